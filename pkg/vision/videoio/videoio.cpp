#include "videoio.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

static char* dup_message(const char* what) {
    size_t n = std::strlen(what);
    char* s = static_cast<char*>(std::malloc(n + 1));
    if (s != nullptr) {
        std::memcpy(s, what, n + 1);
    }
    return s;
}

static void set_error(char** err, const char* what) {
    if (err != nullptr && *err == nullptr) {
        *err = dup_message(what);
    }
}

VioCapture vio_new(void) {
    try {
        return new cv::VideoCapture();
    } catch (...) {
        return nullptr;
    }
}

void vio_free(VioCapture c) {
    try {
        delete static_cast<cv::VideoCapture*>(c);
    } catch (...) {
    }
}

int vio_open(VioCapture c, const char* url, int api, const int* params, int n, char** err) {
    try {
        std::vector<int> p(params, params + n);
        return static_cast<cv::VideoCapture*>(c)->open(std::string(url), api, p) ? 1 : 0;
    } catch (const std::exception& e) {
        set_error(err, e.what());
    } catch (...) {
        set_error(err, "unknown C++ exception");
    }
    return 0;
}

int vio_read(VioCapture c, void* mat, char** err) {
    try {
        return static_cast<cv::VideoCapture*>(c)->read(*static_cast<cv::Mat*>(mat)) ? 1 : 0;
    } catch (const std::exception& e) {
        set_error(err, e.what());
    } catch (...) {
        set_error(err, "unknown C++ exception");
    }
    return 0;
}

int vio_grab(VioCapture c, char** err) {
    try {
        return static_cast<cv::VideoCapture*>(c)->grab() ? 1 : 0;
    } catch (const std::exception& e) {
        set_error(err, e.what());
    } catch (...) {
        set_error(err, "unknown C++ exception");
    }
    return 0;
}

int vio_retrieve(VioCapture c, void* mat, char** err) {
    try {
        return static_cast<cv::VideoCapture*>(c)->retrieve(*static_cast<cv::Mat*>(mat)) ? 1 : 0;
    } catch (const std::exception& e) {
        set_error(err, e.what());
    } catch (...) {
        set_error(err, "unknown C++ exception");
    }
    return 0;
}

double vio_get(VioCapture c, int prop) {
    try {
        return static_cast<cv::VideoCapture*>(c)->get(prop);
    } catch (...) {
        return 0;
    }
}

char* vio_backend(VioCapture c) {
    try {
        cv::VideoCapture* vc = static_cast<cv::VideoCapture*>(c);
        if (!vc->isOpened()) {
            return nullptr;
        }
        return dup_message(vc->getBackendName().c_str());
    } catch (...) {
        return nullptr;
    }
}
