package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// RenameRequest is the body of POST /v1/ui/identities/{id}/rename.
type RenameRequest struct {
	Name string `json:"name"`
}

// Rename gives identity id a new name, keeping its photos' embeddings: the face API has no
// rename, and an identity's id is derived from its name. With a new id it creates the new
// identity first and then deletes the old one (deleting the new one again if that fails); when
// only case or spacing changes (same id) it deletes and re-creates, restoring the old record if
// re-creating fails. The identity's creation time becomes now. Errors are the gallery's
// (gallery.ErrNotFound, ErrExists, ErrInvalidName, ...).
func (u *UI) Rename(ctx context.Context, id, name string) (gallery.Identity, error) {
	s := u.cfg.Store
	if s == nil {
		return gallery.Identity{}, errors.New("web: no gallery store configured")
	}
	newID, err := gallery.IDFor(name)
	if err != nil {
		return gallery.Identity{}, err
	}
	cur, err := s.Get(ctx, id)
	if err != nil {
		return gallery.Identity{}, err
	}
	photos := make([]gallery.NewPhoto, len(cur.Photos))
	for i, p := range cur.Photos {
		photos[i] = gallery.NewPhoto{Embedding: p.Embedding, SHA256: p.SHA256, Box: p.Box}
	}
	var next gallery.Identity
	if newID != cur.ID {
		if next, err = s.Create(ctx, name, photos); err != nil {
			return gallery.Identity{}, err
		}
		if err := s.Delete(ctx, cur.ID); err != nil {
			if derr := s.Delete(ctx, next.ID); derr != nil {
				err = errors.Join(err, fmt.Errorf("undoing the new identity %s: %w", next.ID, derr))
			}
			return gallery.Identity{}, err
		}
	} else {
		if err := s.Delete(ctx, cur.ID); err != nil {
			return gallery.Identity{}, err
		}
		if next, err = s.Create(ctx, name, photos); err != nil {
			if _, rerr := s.Create(ctx, cur.Name, photos); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restoring %q: %w", cur.Name, rerr))
			}
			return gallery.Identity{}, err
		}
	}
	if g := u.cfg.Gallery; g != nil {
		if next.ID != cur.ID {
			g.Forget(cur.ID, cur.Revision)
		}
		g.Apply(next)
	}
	u.log.Info("web: identity renamed", "from", cur.Name, "to", next.Name, "id", next.ID)
	return next, nil
}

func (u *UI) serveRename(w http.ResponseWriter, r *http.Request) {
	var req RenameRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 8<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_json", `the body must be {"name": "New Name"}: `+err.Error())
		return
	}
	ident, err := u.Rename(r.Context(), r.PathValue("id"), req.Name)
	if err != nil {
		var fe *faceapi.Error
		if errors.As(faceapi.GalleryError(err), &fe) {
			httpapi.WriteError(w, fe.Status, fe.Code, fe.Message)
			return
		}
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, faceapi.IdentitySummary{ID: ident.ID, Name: ident.Name, Photos: len(ident.Photos),
		CreatedAt: ident.CreatedAt, UpdatedAt: ident.UpdatedAt})
}
