// wireprobe: a Go client of a Lumen node built on grpc-go, behaving as the Lumen Go SDK v1.4
// does (discovery, capability fetch, meta.service, chunking, keepalive, strict response
// reassembly, schema parsing). It prints one JSON summary on stdout for the pytest side.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	pb "lumennode/interop/homenativev1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	chunkThreshold = 1 << 20   // the SDK's default: chunk payloads over 1 MiB
	chunkBytes     = 256 << 10 // into 256 KiB chunks
)

type taskResult struct {
	Mime     string            `json:"mime"`
	Schema   string            `json:"schema"`
	Chunks   int               `json:"chunks_sent"`
	Messages int               `json:"messages_received"`
	Meta     map[string]string `json:"meta"`
	Parsed   map[string]any    `json:"parsed"`
	Error    string            `json:"error,omitempty"`
	Code     string            `json:"code,omitempty"`
}

type summary struct {
	Discovered   []discovered          `json:"discovered"`
	Node         *discovered           `json:"node"`
	Capabilities []map[string]any      `json:"capabilities"`
	Results      map[string]taskResult `json:"results"`
}

func main() {
	service := flag.String("service", "_lumen._tcp.local.", "DNS-SD service type to browse")
	iface := flag.String("iface", "127.0.0.1", "IPv4 address of the interface to query on")
	instance := flag.String("instance", "", "instance name to use (default: the first found)")
	image := flag.String("image", "", "image file for the image tasks")
	tasks := flag.String("tasks", "semantic_text_embed,semantic_image_embed,bioclip_classify,ocr,face_recognition,no_such_task", "tasks to run")
	all := flag.Bool("all", false, "multi-node mode: discover every node and send each task to every node offering it")
	expect := flag.Int("expect", 1, "with -all: keep discovering until this many nodes are found (or give up)")
	rounds := flag.Int("rounds", 1, "with -all: requests per task and capable node")
	flag.Parse()

	if *all {
		var imageData []byte
		if *image != "" {
			data, err := os.ReadFile(*image)
			if err != nil {
				fail("read image: %v", err)
			}
			imageData = data
		}
		runAll(*service, *iface, *expect, *rounds, strings.Split(*tasks, ","), imageData)
		return
	}

	out := summary{Results: map[string]taskResult{}}
	var found []discovered
	var err error
	for attempt := 0; attempt < 5 && out.Node == nil; attempt++ {
		found, err = discover(*service, *iface, 1500*time.Millisecond)
		if err != nil {
			fail("discovery: %v", err)
		}
		for i := range found {
			if *instance == "" || found[i].Instance == *instance {
				out.Node = &found[i]
				break
			}
		}
	}
	out.Discovered = found
	if out.Node == nil {
		emit(out)
		fail("no node %q found for %s", *instance, *service)
	}
	address := fmt.Sprintf("%s:%d", out.Node.Address, out.Node.Port)
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 3 * time.Second}),
	)
	if err != nil {
		fail("dial %s: %v", address, err)
	}
	defer conn.Close()
	client := pb.NewInferenceClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	caps, err := capabilities(ctx, client)
	if err != nil {
		fail("capabilities: %v", err)
	}
	owners := map[string][]string{}
	for _, c := range caps {
		if c.ServiceName == "" || !strings.HasPrefix(c.ProtocolVersion, "1.") {
			fail("incompatible capability %q (protocol %q)", c.ServiceName, c.ProtocolVersion)
		}
		names := []string{}
		for _, t := range c.Tasks {
			owners[t.Name] = append(owners[t.Name], c.ServiceName)
			names = append(names, t.Name)
		}
		out.Capabilities = append(out.Capabilities, map[string]any{
			"service": c.ServiceName, "protocol_version": c.ProtocolVersion, "tasks": names, "model_ids": c.ModelIds,
		})
	}

	var imageData []byte
	if *image != "" {
		if imageData, err = os.ReadFile(*image); err != nil {
			fail("read image: %v", err)
		}
	}
	for _, task := range strings.Split(*tasks, ",") {
		payload, mime := imageData, "image/webp"
		if strings.HasPrefix(task, "semantic_text") {
			payload, mime = []byte("a photo of a red fox in the snow"), "text/plain"
		}
		meta := map[string]string{}
		if len(owners[task]) == 1 {
			meta["service"] = owners[task][0] // what the SDK's resolveService does
		}
		if task == "bioclip_classify" {
			meta["top_k"] = "3"
		}
		out.Results[task] = infer(ctx, client, task, payload, mime, meta)
	}
	emit(out)
}

func capabilities(ctx context.Context, client pb.InferenceClient) ([]*pb.Capability, error) {
	stream, err := client.StreamCapabilities(ctx, &emptypb.Empty{})
	if err != nil {
		return nil, err
	}
	var caps []*pb.Capability
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return caps, nil
		}
		if err != nil {
			return nil, err
		}
		caps = append(caps, c)
	}
}

func infer(ctx context.Context, client pb.InferenceClient, task string, payload []byte, mime string, meta map[string]string) taskResult {
	stream, err := client.Infer(ctx)
	if err != nil {
		return failed(err)
	}
	var requests []*pb.InferRequest
	if len(payload) <= chunkThreshold {
		requests = append(requests, &pb.InferRequest{CorrelationId: "probe", Task: task, Payload: payload, PayloadMime: mime, Meta: meta})
	} else {
		total := uint64((len(payload) + chunkBytes - 1) / chunkBytes)
		for seq := uint64(0); seq < total; seq++ {
			end := min(int(seq+1)*chunkBytes, len(payload))
			requests = append(requests, &pb.InferRequest{
				Task: task, Payload: payload[int(seq)*chunkBytes : end], PayloadMime: mime, Meta: meta,
				Seq: seq, Total: total, Offset: seq * chunkBytes,
			})
		}
	}
	for _, r := range requests {
		if err := stream.Send(r); err != nil {
			break // the status arrives on Recv
		}
	}
	_ = stream.CloseSend()
	var responses []*pb.InferResponse
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return failed(err)
		}
		responses = append(responses, resp)
		if resp.IsFinal {
			break
		}
	}
	final, err := assemble(responses)
	if err != nil {
		return taskResult{Error: "assemble: " + err.Error()}
	}
	result := taskResult{Mime: final.ResultMime, Schema: final.ResultSchema, Chunks: len(requests), Messages: len(responses), Meta: final.Meta}
	parsed, err := parse(final)
	if err != nil {
		result.Error = "parse: " + err.Error()
	}
	result.Parsed = parsed
	return result
}

func failed(err error) taskResult {
	st, _ := status.FromError(err)
	return taskResult{Code: st.Code().String(), Error: st.Message()}
}

// assemble follows the SDK: a chunked response (total > 1) is exactly its chunks, contiguous,
// final only on the last, with identical mime/schema/model_id.
func assemble(responses []*pb.InferResponse) (*pb.InferResponse, error) {
	if len(responses) == 0 {
		return nil, errors.New("no responses")
	}
	var total uint64
	for _, r := range responses {
		if r.Total > 1 {
			total = r.Total
		}
	}
	if total == 0 {
		for i := len(responses) - 1; i >= 0; i-- {
			if responses[i].IsFinal {
				return responses[i], nil
			}
		}
		return responses[len(responses)-1], nil
	}
	if uint64(len(responses)) != total {
		return nil, fmt.Errorf("expected %d chunks, got %d", total, len(responses))
	}
	var body []byte
	for i, r := range responses {
		if r.Seq != uint64(i) || r.Offset != uint64(len(body)) || r.IsFinal != (i == len(responses)-1) {
			return nil, fmt.Errorf("chunk %d out of contract (seq %d offset %d final %v)", i, r.Seq, r.Offset, r.IsFinal)
		}
		if r.ResultMime != responses[0].ResultMime || r.Meta["model_id"] != responses[0].Meta["model_id"] {
			return nil, fmt.Errorf("chunk %d mime/model mismatch", i)
		}
		body = append(body, r.Result...)
	}
	last := responses[len(responses)-1]
	return &pb.InferResponse{IsFinal: true, Result: body, Meta: last.Meta, ResultMime: last.ResultMime, ResultSchema: last.ResultSchema, Total: 1}, nil
}

type embeddingV1 struct {
	Vector  []float32 `json:"vector"`
	Dim     int       `json:"dim"`
	ModelID string    `json:"model_id"`
}

type labelsV1 struct {
	Labels []struct {
		Label string  `json:"label"`
		Score float64 `json:"score"`
	} `json:"labels"`
	ModelID string `json:"model_id"`
}

type faceV1 struct {
	Faces []struct {
		BBox       []float32 `json:"bbox"`
		Confidence float32   `json:"confidence"`
	} `json:"faces"`
	Count   int    `json:"count"`
	ModelID string `json:"model_id"`
}

type ocrV1 struct {
	Items []struct {
		Box        [][]int `json:"box"`
		Text       string  `json:"text"`
		Confidence float64 `json:"confidence"`
	} `json:"items"`
	Count   int    `json:"count"`
	ModelID string `json:"model_id"`
}

// parse checks the mime exactly as the SDK's parsers do, then decodes into typed structs.
func parse(resp *pb.InferResponse) (map[string]any, error) {
	schema := strings.TrimPrefix(resp.ResultMime, "application/json;schema=")
	if schema == resp.ResultMime {
		return nil, fmt.Errorf("unexpected response type: %s", resp.ResultMime)
	}
	switch schema {
	case "embedding_v1":
		var e embeddingV1
		if err := json.Unmarshal(resp.Result, &e); err != nil {
			return nil, err
		}
		if e.Dim != len(e.Vector) || e.Dim == 0 {
			return nil, fmt.Errorf("dim %d but %d values", e.Dim, len(e.Vector))
		}
		return map[string]any{"dim": e.Dim, "model_id": e.ModelID}, nil
	case "labels_v1":
		var l labelsV1
		if err := json.Unmarshal(resp.Result, &l); err != nil {
			return nil, err
		}
		return map[string]any{"labels": len(l.Labels), "model_id": l.ModelID}, nil
	case "face_v1":
		var f faceV1
		if err := json.Unmarshal(resp.Result, &f); err != nil {
			return nil, err
		}
		return map[string]any{"count": f.Count, "faces": len(f.Faces), "model_id": f.ModelID}, nil
	case "ocr_v1":
		var o ocrV1
		if err := json.Unmarshal(resp.Result, &o); err != nil {
			return nil, err
		}
		return map[string]any{"count": o.Count, "items": len(o.Items), "model_id": o.ModelID}, nil
	}
	return nil, fmt.Errorf("unknown schema %s", schema)
}

func emit(out summary) {
	emitAny(out)
}

func emitAny(out any) {
	encoded, _ := json.Marshal(out)
	fmt.Println("WIREPROBE-SUMMARY " + string(encoded))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wireprobe: "+format+"\n", args...)
	os.Exit(1)
}
