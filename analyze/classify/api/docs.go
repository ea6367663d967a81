package api

import "github.com/vigil-video/vigil/pkg/httpapi"

// openAPI describes the routes Mount adds.
func openAPI(projects bool) httpapi.Doc {
	ref := func(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
	jsonBody := func(desc string, schema map[string]any) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
	}
	imageBody := map[string]any{"required": true, "content": map[string]any{
		"image/jpeg":               map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
		"image/png":                map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
		"multipart/form-data":      map[string]any{"schema": map[string]any{"type": "object", "properties": map[string]any{"image": map[string]any{"type": "string", "format": "binary"}, "model": map[string]any{"type": "string"}}}},
		"application/octet-stream": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
	}}
	nameParam := func(n, desc string) map[string]any {
		return map[string]any{"name": n, "in": "path", "required": true, "description": desc, "schema": map[string]any{"type": "string"}}
	}
	tag := []any{"classifiers"}
	paths := map[string]map[string]any{
		"/v1/classifiers": {
			"get": map[string]any{"tags": tag, "summary": "List custom classifiers and whether this process runs them",
				"responses": map[string]any{"200": jsonBody("the classifiers", map[string]any{"type": "object", "properties": map[string]any{
					"classifiers": map[string]any{"type": "array", "items": ref("ClassifierInfo")}}})}},
			"post": map[string]any{"tags": tag, "summary": "Register an ONNX classifier with its manifest",
				"description": "multipart/form-data with a `manifest` part (a ClassifierManifest as YAML or JSON) and a `model` part (.onnx). The model is loaded and run once; what does not fit the manifest is refused with a precise message. It replaces a classifier of the same name and reaches every analyzer through the object store.",
				"requestBody": map[string]any{"required": true, "content": map[string]any{"multipart/form-data": map[string]any{"schema": map[string]any{
					"type": "object", "required": []any{"manifest", "model"}, "properties": map[string]any{
						"manifest": map[string]any{"type": "string", "format": "binary"}, "model": map[string]any{"type": "string", "format": "binary"}}}}}},
				"responses": map[string]any{"201": jsonBody("registered and loaded", ref("ClassifierInfo")),
					"400": httpapi.ErrorResponse("invalid_manifest or bad_request"),
					"422": httpapi.ErrorResponse("invalid_model (not ONNX, external data, shapes or labels that do not fit) or digest_mismatch"),
					"503": httpapi.ErrorResponse("busy: two model uploads are in progress; retry after Retry-After")}},
		},
		"/v1/classifiers/{name}": {
			"get": map[string]any{"tags": tag, "summary": "A classifier's state and manifest", "parameters": []any{nameParam("name", "classifier name")},
				"responses": map[string]any{"200": jsonBody("the classifier", ref("ClassifierInfo")), "404": httpapi.ErrorResponse("classifier_not_found")}},
			"delete": map[string]any{"tags": tag, "summary": "Delete a classifier; every analyzer unloads it", "parameters": []any{nameParam("name", "classifier name")},
				"responses": map[string]any{"204": map[string]any{"description": "deleted"}, "404": httpapi.ErrorResponse("classifier_not_found")}},
		},
		"/v1/classify": {
			"post": map[string]any{"tags": tag, "summary": "Classify an image with the named classifiers (default: all)",
				"parameters":  []any{map[string]any{"name": "model", "in": "query", "description": "classifier names, comma-separated or repeated", "schema": map[string]any{"type": "string"}}},
				"requestBody": imageBody,
				"responses": map[string]any{"200": jsonBody("every prediction with all scores", ref("ClassifyResult")),
					"400": httpapi.ErrorResponse("invalid_image"), "404": httpapi.ErrorResponse("classifier_not_loaded"),
					"503": httpapi.ErrorResponse("busy: as many images are being classified or waiting as the server admits; retry after Retry-After")}},
		},
	}
	if projects {
		ptag := []any{"classifier training"}
		pp := nameParam("project", "project name (also the trained classifier's name)")
		paths["/v1/classifier-projects"] = map[string]any{
			"post": map[string]any{"tags": ptag, "summary": "Create a training project",
				"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
					"type": "object", "required": []any{"name"}, "properties": map[string]any{
						"name":     map[string]any{"type": "string", "example": "clothes"},
						"backbone": map[string]any{"type": "string", "description": "backbone model; default the server's default"},
						"target":   map[string]any{"type": "string", "enum": []any{"frame", "face"}}}}}}},
				"responses": map[string]any{"201": jsonBody("created", ref("Project")), "409": httpapi.ErrorResponse("project_exists")}},
			"get": map[string]any{"tags": ptag, "summary": "List projects",
				"responses": map[string]any{"200": jsonBody("the projects", map[string]any{"type": "object", "properties": map[string]any{
					"projects": map[string]any{"type": "array", "items": ref("Project")}}})}},
		}
		paths["/v1/classifier-projects/{project}"] = map[string]any{
			"get": map[string]any{"tags": ptag, "summary": "A project's state, training progress and report", "parameters": []any{pp},
				"responses": map[string]any{"200": jsonBody("the project", ref("Project")), "404": httpapi.ErrorResponse("project_not_found")}},
			"delete": map[string]any{"tags": ptag, "summary": "Delete a project and its files", "parameters": []any{pp},
				"responses": map[string]any{"204": map[string]any{"description": "deleted"}, "409": httpapi.ErrorResponse("project_busy")}},
		}
		paths["/v1/classifier-projects/{project}/dataset"] = map[string]any{
			"put": map[string]any{"tags": ptag, "summary": "Upload the dataset: a ZIP of one folder of JPEG/PNG images per class",
				"description": "Replaces the project's dataset. Paths leaving the archive, absolute paths, links, ZIP bombs, too many entries, non-images and classes with too few images are refused with a precise error; nothing is written outside the project's directory.",
				"parameters":  []any{pp},
				"requestBody": map[string]any{"required": true, "content": map[string]any{
					"application/zip":     map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
					"multipart/form-data": map[string]any{"schema": map[string]any{"type": "object", "properties": map[string]any{"dataset": map[string]any{"type": "string", "format": "binary"}}}}}},
				"responses": map[string]any{"200": jsonBody("imported", ref("Project")),
					"400": httpapi.ErrorResponse("invalid_archive, unsafe_dataset, invalid_image or bad_dataset_layout"), "413": httpapi.ErrorResponse("too_large")}},
		}
		paths["/v1/classifier-projects/{project}/train"] = map[string]any{
			"post": map[string]any{"tags": ptag, "summary": "Start training; poll the project for progress and the report", "parameters": []any{pp},
				"responses": map[string]any{"202": jsonBody("training started", ref("Project")), "409": httpapi.ErrorResponse("project_busy or no_dataset")}},
		}
		paths["/v1/classifier-projects/{project}/predict"] = map[string]any{
			"post": map[string]any{"tags": ptag, "summary": "Classify an image with the project's trained classifier", "parameters": []any{pp},
				"requestBody": imageBody,
				"responses": map[string]any{"200": jsonBody("the predictions", ref("ClassifyResult")), "409": httpapi.ErrorResponse("not_trained"),
					"503": httpapi.ErrorResponse("busy: retry after Retry-After")}},
		}
	}
	schemas := map[string]any{
		"ClassifierInfo": map[string]any{"type": "object", "properties": map[string]any{
			"name": map[string]any{"type": "string"}, "state": map[string]any{"type": "string", "enum": []any{"loaded", "failed"}},
			"error": map[string]any{"type": "string"}, "manifest": ref("ClassifierManifest"),
			"size": map[string]any{"type": "integer"}, "loaded_at": map[string]any{"type": "string", "format": "date-time"}}},
		"ClassifyResult": map[string]any{"type": "object", "properties": map[string]any{
			"width": map[string]any{"type": "integer"}, "height": map[string]any{"type": "integer"}, "faces": map[string]any{"type": "integer"},
			"predictions": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
				"model": map[string]any{"type": "string"}, "target": map[string]any{"type": "string", "example": "frame"},
				"label": map[string]any{"type": "string"}, "score": map[string]any{"type": "number"}, "reported": map[string]any{"type": "boolean"},
				"scores": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "number"}}}}}}},
		"Project": map[string]any{"type": "object", "properties": map[string]any{
			"name": map[string]any{"type": "string"}, "state": map[string]any{"type": "string", "enum": []any{"new", "ready", "training", "trained", "failed", "interrupted"}},
			"spec": map[string]any{"type": "object"}, "dataset": map[string]any{"type": "object"}, "progress": map[string]any{"type": "object"},
			"error": map[string]any{"type": "string"}, "report": map[string]any{"type": "object"}, "classifier": map[string]any{"type": "string"}}},
	}
	for k, v := range manifestSchemas() {
		schemas[k] = v
	}
	return httpapi.Doc{Paths: paths, Schemas: schemas, Tags: []map[string]any{
		{"name": "classifiers", "description": "Custom image classifiers: register ONNX models, run them on images."},
		{"name": "classifier training", "description": "Train a classifier from labelled images: create a project, upload a dataset, train, predict."},
	}}
}
