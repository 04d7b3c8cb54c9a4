package main

// The SDK's result types and parsers (pkg/types): the result_mime must be exactly
// "application/json;schema=<name>", then encoding/json into these field types. A JSON number
// with a fraction where the SDK has an int (ocr box points, dim, count) fails to decode, as it
// does in the SDK; a missing field decodes as its zero value.

import (
	"encoding/json"
	"fmt"
	"math"

	pb "lumennode/interop/homenativev1"
)

type embeddingV1 struct {
	Vector  []float32 `json:"vector"`
	Dim     int       `json:"dim"`
	ModelID string    `json:"model_id"`
}

type labelsV1 struct {
	Labels []struct {
		Label string  `json:"label"`
		Score float32 `json:"score"`
	} `json:"labels"`
	ModelID string `json:"model_id"`
}

type faceV1 struct {
	Faces []struct {
		BBox       []float32 `json:"bbox"`
		Confidence float32   `json:"confidence"`
		Landmarks  []float32 `json:"landmarks,omitempty"`
		Embedding  []float32 `json:"embedding,omitempty"`
	} `json:"faces"`
	Count   int    `json:"count"`
	ModelID string `json:"model_id"`
}

type ocrV1 struct {
	Items []struct {
		Box        [][]int `json:"box"`
		Text       string  `json:"text"`
		Confidence float32 `json:"confidence"`
	} `json:"items"`
	Count   int    `json:"count"`
	ModelID string `json:"model_id"`
}

func parse(resp *pb.InferResponse) (map[string]any, error) {
	switch resp.ResultMime {
	case "application/json;schema=embedding_v1":
		var e embeddingV1
		if err := json.Unmarshal(resp.Result, &e); err != nil {
			return nil, fmt.Errorf("failed to parse embedding response: %w", err)
		}
		var norm float64
		for _, v := range e.Vector {
			norm += float64(v) * float64(v)
		}
		head := e.Vector[:min(4, len(e.Vector))]
		return map[string]any{"dim": e.Dim, "len": len(e.Vector), "model_id": e.ModelID, "norm": math.Sqrt(norm), "head": head}, nil
	case "application/json;schema=labels_v1":
		var l labelsV1
		if err := json.Unmarshal(resp.Result, &l); err != nil {
			return nil, fmt.Errorf("failed to parse classification response: %w", err)
		}
		labels := make([]string, 0, len(l.Labels))
		sorted := true
		for i, x := range l.Labels {
			labels = append(labels, x.Label)
			if i > 0 && x.Score > l.Labels[i-1].Score {
				sorted = false
			}
		}
		return map[string]any{"labels": labels, "sorted_desc": sorted, "model_id": l.ModelID}, nil
	case "application/json;schema=face_v1":
		var f faceV1
		if err := json.Unmarshal(resp.Result, &f); err != nil {
			return nil, fmt.Errorf("failed to parse detection response: %w", err)
		}
		boxes := make([][]float32, 0, len(f.Faces))
		embeddings := 0
		for _, face := range f.Faces {
			boxes = append(boxes, face.BBox)
			if len(face.Embedding) > 0 {
				embeddings++
			}
		}
		return map[string]any{"count": f.Count, "faces": len(f.Faces), "boxes": boxes, "embeddings": embeddings, "model_id": f.ModelID}, nil
	case "application/json;schema=ocr_v1":
		var o ocrV1
		if err := json.Unmarshal(resp.Result, &o); err != nil {
			return nil, fmt.Errorf("failed to parse ocr response: %w", err)
		}
		texts := make([]string, 0, len(o.Items))
		for _, item := range o.Items {
			texts = append(texts, item.Text)
		}
		return map[string]any{"count": o.Count, "items": len(o.Items), "texts": texts, "model_id": o.ModelID}, nil
	}
	return nil, fmt.Errorf("unexpected response type: %s", resp.ResultMime)
}
