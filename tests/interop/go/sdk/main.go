// sdkprobe: uses the Lumen Go SDK as Lumilio Photos does — config.DefaultConfig() (mDNS discovery
// of _lumen._tcp), client.Start, then Infer for every SDK task and the SDK's own parsers — and
// prints one JSON summary line for the pytest side.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/edwinzhancn/lumen-sdk/pkg/client"
	"github.com/edwinzhancn/lumen-sdk/pkg/config"
	"github.com/edwinzhancn/lumen-sdk/pkg/types"
	pb "github.com/edwinzhancn/lumen-sdk/proto"
	"go.uber.org/zap"
)

func main() {
	image, err := os.ReadFile(os.Getenv("SDKPROBE_IMAGE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkprobe: set SDKPROBE_IMAGE to an image file:", err)
		os.Exit(2)
	}
	lumen, err := client.NewLumenClient(config.DefaultConfig(), zap.NewNop())
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkprobe: new client:", err)
		os.Exit(1)
	}
	defer lumen.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := lumen.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sdkprobe: start:", err)
		os.Exit(1)
	}
	results := map[string]map[string]any{}
	run := func(task string, payload []byte, mime string, meta map[string]string) {
		resp, err := lumen.Infer(ctx, &pb.InferRequest{Task: task, Payload: payload, PayloadMime: mime, Meta: meta})
		if err != nil {
			results[task] = map[string]any{"error": err.Error()}
			return
		}
		parsed := map[string]any{"mime": resp.ResultMime}
		parser := types.ParseInferResponse(resp)
		switch {
		case strings.HasSuffix(resp.ResultMime, "embedding_v1"):
			e, err := parser.AsEmbeddingResponse()
			if err != nil {
				parsed["error"] = err.Error()
			} else {
				parsed["dim"], parsed["model_id"] = len(e.Vector), e.ModelID
			}
		case strings.HasSuffix(resp.ResultMime, "labels_v1"):
			l, err := parser.AsClassificationResponse()
			if err != nil {
				parsed["error"] = err.Error()
			} else {
				parsed["labels"], parsed["model_id"] = len(l.Labels), l.ModelID
			}
		case strings.HasSuffix(resp.ResultMime, "face_v1"):
			f, err := parser.AsFaceResponse()
			if err != nil {
				parsed["error"] = err.Error()
			} else {
				parsed["faces"], parsed["model_id"] = len(f.Faces), f.ModelID
			}
		default:
			var raw map[string]any
			if err := json.Unmarshal(resp.Result, &raw); err != nil {
				parsed["error"] = err.Error()
			} else {
				parsed["model_id"] = raw["model_id"]
			}
		}
		results[task] = parsed
	}
	run("semantic_text_embed", []byte("a photo of a red fox"), "text/plain", nil)
	run("semantic_image_embed", image, "image/webp", nil)
	run("bioclip_classify", image, "image/webp", map[string]string{"top_k": "3"})
	run("ocr", image, "image/webp", nil)
	run("face_recognition", image, "image/webp", nil)
	encoded, _ := json.Marshal(map[string]any{"nodes": len(lumen.GetNodes()), "results": results})
	fmt.Println("SDKPROBE-SUMMARY " + string(encoded))
}
