package main

// The client side of the Lumen Go SDK v1.4 line, as read from its source (EdwinZhanCN/Lumen-SDK:
// pkg/client/{client,pool,lumen_balancer,chunker,protocol}.go, pkg/types/{task_contract,
// response_assembly,parsers,embedding,classification,detection,ocr}.go; commits named in
// docs/grpc.md "SDK compatibility"). Only behaviour is reproduced, not code.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	pb "lumennode/interop/homenativev1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	chunkThreshold       = 1 << 20   // config.DefaultConfig().Chunk.Threshold: len <= 1 MiB goes whole
	chunkBytes           = 256 << 10 // Chunk.MaxChunkBytes
	hardFailureThreshold = 3         // pool.go: 3 node-health failures start a cooldown
	capBackoffMin        = time.Second
	capBackoffMax        = 8 * time.Second
	supportedMajor       = 1
)

// dial opens a connection with the SDK's options: insecure, keepalive pings every 10 s during
// RPCs with a 3 s timeout, grpc-go's default 4 MiB receive limit.
func dial(address string) (*grpc.ClientConn, error) {
	return grpc.NewClient(address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 3 * time.Second}),
	)
}

type capabilityFetch struct {
	Attempts      int      `json:"attempts"`
	Codes         []string `json:"codes"` // status code of every failed attempt
	Compatible    bool     `json:"compatible"`
	Reason        string   `json:"incompatible_reason,omitempty"`
	UsedFallback  bool     `json:"used_get_capabilities"`
	Unimplemented bool     `json:"unimplemented"`
}

// fetchCapabilities retries like fetchCapabilitiesWithRetry: a failed fetch or an empty stream
// is retried after 1 s, doubling to 8 s, for as long as `budget` allows; UNIMPLEMENTED on
// StreamCapabilities falls back to GetCapabilities; UNIMPLEMENTED on both is terminal.
func fetchCapabilities(conn *grpc.ClientConn, budget time.Duration) ([]*pb.Capability, capabilityFetch) {
	client := pb.NewInferenceClient(conn)
	var report capabilityFetch
	deadline := time.Now().Add(budget)
	backoff := capBackoffMin
	for {
		report.Attempts++
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		caps, fallback, err := fetchCapabilitySet(ctx, client)
		cancel()
		report.UsedFallback = report.UsedFallback || fallback
		if err == nil && len(caps) > 0 {
			report.Compatible, report.Reason = compatibility(caps)
			return caps, report
		}
		code := "EMPTY"
		if err != nil {
			code = status.Code(err).String()
			if fallback && status.Code(err) == codes.Unimplemented {
				report.Unimplemented = true
				report.Reason = "capability RPC not implemented"
				report.Codes = append(report.Codes, code)
				return nil, report
			}
		}
		report.Codes = append(report.Codes, code)
		if time.Now().Add(backoff).After(deadline) {
			return nil, report
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, capBackoffMax)
	}
}

func fetchCapabilitySet(ctx context.Context, client pb.InferenceClient) ([]*pb.Capability, bool, error) {
	stream, err := client.StreamCapabilities(ctx, &emptypb.Empty{})
	if err == nil {
		var caps []*pb.Capability
		for {
			c, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return caps, false, nil
			}
			if err != nil {
				if status.Code(err) != codes.Unimplemented {
					return nil, false, err
				}
				break
			}
			caps = append(caps, c)
		}
	} else if status.Code(err) != codes.Unimplemented {
		return nil, false, err
	}
	c, err := client.GetCapabilities(ctx, &emptypb.Empty{})
	if err != nil {
		return nil, true, err
	}
	return []*pb.Capability{c}, true, nil
}

var protocolRe = regexp.MustCompile(`^([0-9]+)(\.[0-9]+)*(\-[0-9A-Za-z.-]+)?$`)

// compatibility is the strict rule of the newest SDK: at least one capability, each with a
// parseable protocol_version ("1", "1.0", "1.0.0", "v1.0.0", "1.0.0-beta.1") of major 1.
func compatibility(caps []*pb.Capability) (bool, string) {
	if len(caps) == 0 {
		return false, "node reported no capabilities"
	}
	for _, c := range caps {
		version := strings.TrimSpace(c.ProtocolVersion)
		if version == "" {
			return false, "capability omitted data-plane protocol version"
		}
		m := protocolRe.FindStringSubmatch(strings.TrimPrefix(strings.TrimPrefix(version, "v"), "V"))
		if m == nil {
			return false, fmt.Sprintf("unparsable data-plane protocol version %q", version)
		}
		if major, _ := strconv.Atoi(m[1]); major != supportedMajor {
			return false, fmt.Sprintf("unsupported data-plane protocol major %d", major)
		}
	}
	return true, ""
}

// routable: the picker only routes a task to a node whose capabilities list it.
func routable(caps []*pb.Capability, task string) bool {
	return len(matchingServices(caps, task)) > 0
}

func matchingServices(caps []*pb.Capability, task string) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range caps {
		for _, t := range c.Tasks {
			if t.Name == task && c.ServiceName != "" && !seen[c.ServiceName] {
				seen[c.ServiceName] = true
				out = append(out, c.ServiceName)
			}
		}
	}
	return out
}

// resolveService: meta.service is filled from the capabilities only when the caller left it
// empty and exactly one service offers the task.
func resolveService(caps []*pb.Capability, task string, meta map[string]string) {
	if strings.TrimSpace(meta["service"]) != "" {
		return
	}
	if services := matchingServices(caps, task); len(services) == 1 {
		meta["service"] = services[0]
	}
}

var rawImageMimes = map[string]bool{"image/jpeg": true, "image/png": true, "image/webp": true}

// validateTaskRequest: the client-side checks the SDK makes before it sends anything.
func validateTaskRequest(task, mime string, meta map[string]string) error {
	mime = strings.TrimSpace(mime)
	if strings.TrimSpace(task) == "" {
		return errors.New("task is required")
	}
	if mime == "" {
		return errors.New("payload_mime is required")
	}
	tensor := strings.EqualFold(mime, "application/octet-stream") && strings.EqualFold(meta["lumen.input.kind"], "tensor")
	switch task {
	case "semantic_text_embed":
		if mime != "text/plain" {
			return errors.New("semantic_text_embed requires text/plain payload_mime")
		}
	case "semantic_image_embed", "ocr", "face_recognition":
		if !tensor && !rawImageMimes[mime] {
			return fmt.Errorf("unsupported image payload_mime: %s", mime)
		}
	case "bioclip_classify":
		if s := strings.TrimSpace(meta["service"]); s != "" && s != "clip" {
			return fmt.Errorf("bioclip_classify requires service %q", "clip")
		}
		if !tensor && !rawImageMimes[mime] {
			return fmt.Errorf("unsupported image payload_mime: %s", mime)
		}
	}
	return nil
}

// chunk: a payload up to 1 MiB is one message; larger ones are 256 KiB slices, every chunk
// repeating task, mime, meta and the caller's correlation id, with seq/total/offset.
func chunk(task string, payload []byte, mime, correlationID string, meta map[string]string) []*pb.InferRequest {
	if len(payload) <= chunkThreshold {
		return []*pb.InferRequest{{CorrelationId: correlationID, Task: task, Payload: payload, PayloadMime: mime, Meta: meta}}
	}
	total := uint64((len(payload) + chunkBytes - 1) / chunkBytes)
	requests := make([]*pb.InferRequest, 0, total)
	for seq := uint64(0); seq < total; seq++ {
		end := min(int(seq+1)*chunkBytes, len(payload))
		requests = append(requests, &pb.InferRequest{
			CorrelationId: correlationID, Task: task, Payload: payload[int(seq)*chunkBytes : end],
			PayloadMime: mime, Meta: meta, Seq: seq, Total: total, Offset: seq * chunkBytes,
		})
	}
	return requests
}

// infer sends one request on one Infer stream and returns every response until is_final/EOF.
func infer(ctx context.Context, client pb.InferenceClient, requests []*pb.InferRequest) ([]*pb.InferResponse, error) {
	stream, err := client.Infer(ctx)
	if err != nil {
		return nil, err
	}
	sendErr := make(chan error, 1)
	go func() { // the SDK sends from a goroutine while the caller receives
		defer func() { _ = stream.CloseSend() }()
		for _, r := range requests {
			if err := stream.Send(r); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	var responses []*pb.InferResponse
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) && len(responses) > 0 {
				break
			}
			if errors.Is(err, io.EOF) {
				return nil, errors.New("stream ended without a response")
			}
			return nil, err
		}
		responses = append(responses, resp)
		if resp.IsFinal {
			break
		}
	}
	return responses, nil
}

var contractMetaKeys = []string{
	"lumen.output.kind", "lumen.output.tensor.dtype", "lumen.output.tensor.shape",
	"lumen.output.tensor.layout", "lumen.output.tensor.format", "lumen.output.tensor.byte_order",
	"lumen.model.id", "lumen.model.version",
}

// assemble follows AssembleInferResponses: responses with total > 1 are transport chunks,
// reassembled strictly (one total, every seq once, offsets contiguous, final only on the last,
// identical correlation id / result_mime / result_schema / contract meta); otherwise the last
// final response (or the last response) is the result.
func assemble(responses []*pb.InferResponse) (*pb.InferResponse, error) {
	if len(responses) == 0 {
		return nil, errors.New("no responses to assemble")
	}
	var total uint64
	for _, r := range responses {
		if r.Total > 1 {
			if total != 0 && r.Total != total {
				return nil, fmt.Errorf("inconsistent response chunk total: got %d, want %d", r.Total, total)
			}
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
		return nil, fmt.Errorf("expected %d response chunks, got %d", total, len(responses))
	}
	chunks := make([]*pb.InferResponse, total)
	for _, r := range responses {
		if r.Total != total || r.Seq >= total || chunks[r.Seq] != nil {
			return nil, fmt.Errorf("bad response chunk seq %d total %d", r.Seq, r.Total)
		}
		chunks[r.Seq] = r
	}
	var body []byte
	first := chunks[0]
	for i, c := range chunks {
		if c.Offset != uint64(len(body)) {
			return nil, fmt.Errorf("response chunk seq %d offset mismatch: got %d, want %d", i, c.Offset, len(body))
		}
		if c.IsFinal != (i == len(chunks)-1) {
			return nil, fmt.Errorf("response chunk seq %d final flag wrong", i)
		}
		if c.CorrelationId != first.CorrelationId || c.ResultMime != first.ResultMime || c.ResultSchema != first.ResultSchema {
			return nil, fmt.Errorf("response chunk seq %d contract mismatch", i)
		}
		for _, k := range contractMetaKeys {
			if c.Meta[k] != first.Meta[k] {
				return nil, fmt.Errorf("response chunk seq %d metadata %s mismatch", i, k)
			}
		}
		body = append(body, c.Result...)
	}
	last := chunks[len(chunks)-1]
	return &pb.InferResponse{
		CorrelationId: last.CorrelationId, IsFinal: true, Result: body, Meta: last.Meta,
		ResultMime: last.ResultMime, ResultSchema: last.ResultSchema, Total: 1,
	}, nil
}

// affectsNodeHealth is shouldAffectNodeHealth: only UNAVAILABLE (or a non-status error) counts
// against the node; cancellations, deadlines and every other code do not.
func affectsNodeHealth(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if st, ok := status.FromError(err); ok {
		return st.Code() == codes.Unavailable
	}
	return true
}

// nodeHealth mirrors the picker's Done callback: success resets, a counted failure increments,
// and the third consecutive one starts a cooldown (10 s doubling to 2 min).
type nodeHealth struct {
	HardFailures int  `json:"hard_failures"`
	Cooldowns    int  `json:"cooldowns"`
	InCooldown   bool `json:"in_cooldown"`
}

func (h *nodeHealth) done(err error) {
	if err == nil {
		h.HardFailures, h.InCooldown = 0, false
		return
	}
	if !affectsNodeHealth(err) {
		return
	}
	h.HardFailures++
	if h.HardFailures >= hardFailureThreshold {
		h.Cooldowns++
		h.InCooldown = true
	}
}
