// C interface of the VideoCapture shim: OpenCV 4.6's open-with-parameters, which gocv v0.31
// does not wrap. Every function catches C++ exceptions; none throws.
#ifndef VIGIL_VIDEOIO_H
#define VIGIL_VIDEOIO_H

#ifdef __cplusplus
extern "C" {
#endif

typedef void* VioCapture;

// vio_new allocates an unopened capture; vio_free releases it (and the stream it holds).
VioCapture vio_new(void);
void vio_free(VioCapture c);

// vio_open opens url with the backend api and the (key, value) pairs in params (n ints).
// It returns 1 when the capture is open, 0 otherwise; *err receives a malloc'd message when
// OpenCV threw (the caller frees it) and stays NULL otherwise.
int vio_open(VioCapture c, const char* url, int api, const int* params, int n, char** err);

// vio_read grabs, decodes and stores the next frame in mat (a cv::Mat*). It returns 1 on
// success and 0 when no frame came (end, error or timeout); *err as for vio_open.
int vio_read(VioCapture c, void* mat, char** err);

// vio_grab grabs the next frame without converting it; vio_retrieve converts the grabbed frame
// into mat. Both return 1 on success.
int vio_grab(VioCapture c, char** err);
int vio_retrieve(VioCapture c, void* mat, char** err);

// vio_get returns a capture property (0 when the backend does not know it).
double vio_get(VioCapture c, int prop);

// vio_backend returns the name of the backend in use into a malloc'd string (NULL if none).
char* vio_backend(VioCapture c);

#ifdef __cplusplus
}
#endif

#endif
