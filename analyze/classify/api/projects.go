package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// createRequest is the body of POST /v1/classifier-projects.
type createRequest struct {
	Name     string `json:"name"`
	Backbone string `json:"backbone"`
	Target   string `json:"target"`
}

func (h *handlers) createProject(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "bad_request",
			fmt.Sprintf("want a JSON object {\"name\", \"backbone\", \"target\"}: %v", err))
		return
	}
	p, err := h.cfg.Projects.Create(req.Name, project.Spec{Backbone: req.Backbone, Target: req.Target})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, p)
}

func (h *handlers) listProjects(w http.ResponseWriter, _ *http.Request) {
	list := h.cfg.Projects.List()
	if list == nil {
		list = []project.Project{}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"projects": list})
}

func (h *handlers) getProject(w http.ResponseWriter, r *http.Request) {
	p, err := h.cfg.Projects.Get(r.PathValue("project"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
}

func (h *handlers) deleteProject(w http.ResponseWriter, r *http.Request) {
	if err := h.cfg.Projects.Delete(r.PathValue("project")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// uploadDataset streams a ZIP archive, sent as the body or as the "dataset" part of a
// multipart form, into the project (staged inside its directory, never in a temporary
// directory elsewhere).
func (h *handlers) uploadDataset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("project")
	if _, err := h.cfg.Projects.Get(name); err != nil {
		h.fail(w, r, err)
		return
	}
	body := io.Reader(r.Body)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			h.readFail(w, r, err)
			return
		}
		body = nil
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				h.readFail(w, r, err)
				return
			}
			if part.FormName() == "dataset" {
				body = part
				break
			}
			_, _ = io.Copy(io.Discard, part)
			part.Close()
		}
		if body == nil {
			httpapi.WriteError(w, http.StatusBadRequest, "bad_request", "the form has no \"dataset\" part (a ZIP of one folder per class)")
			return
		}
	}
	p, err := h.cfg.Projects.ImportZIP(r.Context(), name, body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
}

func (h *handlers) train(w http.ResponseWriter, r *http.Request) {
	p, err := h.cfg.Projects.StartTraining(r.PathValue("project"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusAccepted, p)
}

// predict classifies an image with the classifier the project's last training registered.
func (h *handlers) predict(w http.ResponseWriter, r *http.Request) {
	p, err := h.cfg.Projects.Get(r.PathValue("project"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if p.Classifier == "" {
		httpapi.WriteError(w, http.StatusConflict, "not_trained", fmt.Sprintf("project %s has no trained classifier yet (state %s)", p.Name, p.State))
		return
	}
	leave, ok := h.enter(w)
	if !ok {
		return
	}
	defer leave()
	img, _, err := h.readImage(r)
	if err != nil {
		h.readFail(w, r, err)
		return
	}
	res, err := h.classifyAdmitted(r.Context(), img, []string{p.Classifier})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}
