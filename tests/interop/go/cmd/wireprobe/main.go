// wireprobe: a Go client of a Lumen node built on grpc-go that behaves as the Lumen Go SDK v1.4
// line does (sdk.go, mdns.go, parse.go say which SDK behaviour each part reproduces).
//
//	-mode probe (default): find the node (DNS-SD, or -target host:port), fetch capabilities with
//	  the SDK's retries and compatibility rule, then run the steps of a JSON -plan and print one
//	  "WIREPROBE-SUMMARY {json}" line.
//	-mode bench: against -target, sequential semantic_text_embed latency (-n, after -warmup) and
//	  semantic_image_embed throughput with -concurrency streams (-total requests), one
//	  "WIREPROBE-BENCH {json}" line. Each request is one Infer stream on one shared connection, as
//	  the SDK's pool does.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "lumennode/interop/homenativev1"

	"google.golang.org/grpc/status"
)

type step struct {
	Name          string            `json:"name"`
	Task          string            `json:"task"`
	Text          string            `json:"text,omitempty"`
	File          string            `json:"file,omitempty"`
	Mime          string            `json:"mime"`
	Meta          map[string]string `json:"meta,omitempty"`
	CorrelationID string            `json:"correlation_id,omitempty"`
	// Force sends even where the SDK would refuse client-side (task in no capability, failed
	// validation): to see what the node answers a stale or non-SDK client.
	Force bool `json:"force,omitempty"`
}

type plan struct {
	Steps []step `json:"steps"`
}

type stepResult struct {
	Task          string            `json:"task"`
	Routable      bool              `json:"sdk_routes"`   // the SDK picker would send it here
	ClientError   string            `json:"client_error"` // the SDK would refuse it before sending
	SentMeta      map[string]string `json:"sent_meta"`    // meta as sent (service filled)
	Chunks        int               `json:"chunks_sent"`  //
	ChunkCorrIDs  []string          `json:"chunk_correlation_ids"`
	Messages      int               `json:"messages_received"`
	Mime          string            `json:"mime"`
	Schema        string            `json:"schema"`
	CorrelationID string            `json:"correlation_id"`
	Meta          map[string]string `json:"meta"`
	Parsed        map[string]any    `json:"parsed"`
	Code          string            `json:"code,omitempty"`
	Error         string            `json:"error,omitempty"`
	CountsAgainst bool              `json:"counts_against_node"` // SDK node-health failure
	Millis        float64           `json:"ms"`
}

type summary struct {
	Discovered      []discovered          `json:"discovered"`
	Node            *discovered           `json:"node"`
	Address         string                `json:"address"`
	CapabilityFetch capabilityFetch       `json:"capability_fetch"`
	Capabilities    []map[string]any      `json:"capabilities"`
	Results         map[string]stepResult `json:"results"`
	NodeHealth      nodeHealth            `json:"node_health"`
}

func main() {
	mode := flag.String("mode", "probe", "probe or bench")
	service := flag.String("service", "_lumen._tcp.local.", "DNS-SD service type to browse")
	iface := flag.String("iface", "127.0.0.1", "IPv4 address of the interface to query on")
	instance := flag.String("instance", "", "instance name to use (default: the first found)")
	target := flag.String("target", "", "host:port to use instead of DNS-SD discovery")
	planFile := flag.String("plan", "", "JSON plan of steps (probe mode)")
	capTimeout := flag.Duration("cap-timeout", 30*time.Second, "how long to retry the capability fetch")
	timeout := flag.Duration("timeout", 60*time.Second, "deadline of each Infer call")
	n := flag.Int("n", 200, "bench: sequential text requests measured")
	warmup := flag.Int("warmup", 20, "bench: text requests before measuring")
	text := flag.String("text", "a photo of a cat on the beach", "bench: the text")
	image := flag.String("image", "", "bench: image file for the throughput part (empty: skip)")
	imageMime := flag.String("image-mime", "image/webp", "bench: the image's mime type")
	concurrency := flag.Int("concurrency", 16, "bench: concurrent image streams")
	total := flag.Int("total", 160, "bench: image requests in the throughput part")
	all := flag.Bool("all", false, "multi-node mode: discover every node and send tasks to every node offering them")
	expect := flag.Int("expect", 1, "with -all: keep discovering until this many nodes are found (or give up)")
	rounds := flag.Int("rounds", 1, "with -all: requests per task and capable node")
	tasks := flag.String("tasks", "semantic_text_embed,semantic_image_embed", "with -all: tasks to send")
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
		runAll(*service, *iface, *expect, *rounds, strings.Split(*tasks, ","), imageData, *imageMime, *timeout)
		return
	}

	if *mode == "bench" {
		if *target == "" {
			fail("bench mode needs -target")
		}
		bench(*target, *text, *n, *warmup, *image, *imageMime, *concurrency, *total, *timeout)
		return
	}
	if *planFile == "" {
		fail("probe mode needs -plan")
	}
	var p plan
	raw, err := os.ReadFile(*planFile)
	if err != nil || json.Unmarshal(raw, &p) != nil {
		fail("read plan %s: %v", *planFile, err)
	}

	out := summary{Results: map[string]stepResult{}}
	address := *target
	if address == "" {
		for attempt := 0; attempt < 5 && out.Node == nil; attempt++ {
			found, err := discover(*service, *iface, 1500*time.Millisecond)
			if err != nil {
				fail("discovery: %v", err)
			}
			out.Discovered = found
			for i := range found {
				if *instance == "" || found[i].Instance == *instance {
					out.Node = &found[i]
					break
				}
			}
		}
		if out.Node == nil {
			emit("WIREPROBE-SUMMARY", out)
			fail("no node %q found for %s", *instance, *service)
		}
		address = fmt.Sprintf("%s:%d", out.Node.Address, out.Node.Port)
	}
	out.Address = address
	conn, err := dial(address)
	if err != nil {
		fail("dial %s: %v", address, err)
	}
	defer conn.Close()
	caps, fetch := fetchCapabilities(conn, *capTimeout)
	out.CapabilityFetch = fetch
	for _, c := range caps {
		names := []string{}
		for _, t := range c.Tasks {
			names = append(names, t.Name)
		}
		out.Capabilities = append(out.Capabilities, map[string]any{
			"service": c.ServiceName, "protocol_version": c.ProtocolVersion, "tasks": names,
			"model_ids": c.ModelIds, "extra": c.Extra,
		})
	}
	client := pb.NewInferenceClient(conn)
	for _, s := range p.Steps {
		out.Results[s.Name] = runStep(client, caps, fetch.Compatible, s, *timeout, &out.NodeHealth)
	}
	emit("WIREPROBE-SUMMARY", out)
}

func runStep(client pb.InferenceClient, caps []*pb.Capability, compatible bool, s step, timeout time.Duration, health *nodeHealth) stepResult {
	result := stepResult{Task: s.Task}
	payload := []byte(s.Text)
	if s.File != "" {
		data, err := os.ReadFile(s.File)
		if err != nil {
			fail("read %s: %v", s.File, err)
		}
		payload = data
	}
	meta := map[string]string{}
	for k, v := range s.Meta {
		meta[k] = v
	}
	result.Routable = compatible && routable(caps, s.Task)
	if err := validateTaskRequest(s.Task, s.Mime, meta); err != nil {
		result.ClientError = err.Error()
	}
	if !result.Routable && result.ClientError == "" {
		result.ClientError = fmt.Sprintf("no node supports task %q", s.Task)
	}
	if result.ClientError != "" && !s.Force {
		return result
	}
	resolveService(caps, s.Task, meta) // Infer validates first, then fills meta.service
	result.SentMeta = meta
	requests := chunk(s.Task, payload, s.Mime, s.CorrelationID, meta)
	result.Chunks = len(requests)
	for _, r := range requests {
		result.ChunkCorrIDs = append(result.ChunkCorrIDs, r.CorrelationId)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	started := time.Now()
	responses, err := infer(ctx, client, requests)
	result.Millis = float64(time.Since(started).Microseconds()) / 1000
	health.done(err)
	if err != nil {
		st, _ := status.FromError(err)
		result.Code, result.Error = st.Code().String(), st.Message()
		result.CountsAgainst = affectsNodeHealth(err)
		return result
	}
	result.Messages = len(responses)
	final, err := assemble(responses)
	if err != nil {
		result.Error = "assemble: " + err.Error()
		return result
	}
	result.Mime, result.Schema, result.CorrelationID, result.Meta = final.ResultMime, final.ResultSchema, final.CorrelationId, final.Meta
	parsed, err := parse(final)
	if err != nil {
		result.Error = "parse: " + err.Error()
	}
	result.Parsed = parsed
	return result
}

type latency struct {
	N     int     `json:"n"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	Mean  float64 `json:"mean_ms"`
	Min   float64 `json:"min_ms"`
	Fails int     `json:"failures"`
}

type benchOut struct {
	Text       latency `json:"text"`
	Throughput float64 `json:"image_rps"`
	Images     int     `json:"images"`
	Failures   int     `json:"image_failures"`
	Seconds    float64 `json:"image_seconds"`
	FirstError string  `json:"first_error,omitempty"`
}

func bench(target, text string, n, warmup int, imageFile, imageMime string, concurrency, total int, timeout time.Duration) {
	conn, err := dial(target)
	if err != nil {
		fail("dial %s: %v", target, err)
	}
	defer conn.Close()
	client := pb.NewInferenceClient(conn)
	var out benchOut
	textReq := chunk("semantic_text_embed", []byte(text), "text/plain", "", map[string]string{"service": "clip"})
	call := func(requests []*pb.InferRequest) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		responses, err := infer(ctx, client, requests)
		if err == nil {
			_, err = assemble(responses)
		}
		return err
	}
	var samples []float64
	for i := 0; i < warmup+n; i++ {
		started := time.Now()
		err := call(textReq)
		elapsed := float64(time.Since(started).Nanoseconds()) / 1e6
		if err != nil {
			out.Text.Fails++
			if out.FirstError == "" {
				out.FirstError = err.Error()
			}
			continue
		}
		if i >= warmup {
			samples = append(samples, elapsed)
		}
	}
	out.Text = summarize(samples, out.Text.Fails)
	if imageFile != "" && total > 0 {
		data, err := os.ReadFile(imageFile)
		if err != nil {
			fail("read %s: %v", imageFile, err)
		}
		imageReq := chunk("semantic_image_embed", data, imageMime, "", map[string]string{"service": "clip"})
		var next, failures atomic.Int64
		var wg sync.WaitGroup
		var once sync.Once
		started := time.Now()
		for w := 0; w < concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(total) {
					if err := call(imageReq); err != nil {
						failures.Add(1)
						once.Do(func() { out.FirstError = err.Error() })
					}
				}
			}()
		}
		wg.Wait()
		out.Seconds = time.Since(started).Seconds()
		out.Images = total
		out.Failures = int(failures.Load())
		out.Throughput = float64(total-out.Failures) / out.Seconds
	}
	emit("WIREPROBE-BENCH", out)
}

func summarize(samples []float64, fails int) latency {
	if len(samples) == 0 {
		return latency{Fails: fails}
	}
	sorted := append([]float64(nil), samples...)
	sort.Float64s(sorted)
	at := func(q float64) float64 { return sorted[min(len(sorted)-1, int(q*float64(len(sorted)-1)+0.5))] }
	var sum float64
	for _, v := range sorted {
		sum += v
	}
	return latency{N: len(sorted), P50: at(0.5), P95: at(0.95), Mean: sum / float64(len(sorted)), Min: sorted[0], Fails: fails}
}

func emit(prefix string, v any) {
	encoded, _ := json.Marshal(v)
	fmt.Println(prefix + " " + string(encoded))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wireprobe: "+strings.TrimSpace(format)+"\n", args...)
	os.Exit(1)
}
