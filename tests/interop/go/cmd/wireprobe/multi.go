package main

// The -all mode: behave like the SDK's multi-node client. Discover EVERY node of the service
// type, fetch each node's capabilities (protocol major 1 required), then send each task to the
// nodes that offer it, round-robin, so that every capable node gets requests. Every call is
// reported with the node it was sent to and the node that answered (meta node_id, and
// lumen.served_by when the node forwarded it to a peer).

import (
	"context"
	"fmt"
	"strings"
	"time"

	pb "lumennode/interop/homenativev1"

	"google.golang.org/grpc/status"
)

type nodeSummary struct {
	discovered
	Services []string `json:"services"`
	Error    string   `json:"error,omitempty"`
}

type callSummary struct {
	Task     string `json:"task"`
	SentTo   string `json:"sent_to"`
	NodeID   string `json:"node_id"`
	ServedBy string `json:"served_by"`
	ModelID  string `json:"model_id"`
	Schema   string `json:"schema"`
	Code     string `json:"code,omitempty"`
	Error    string `json:"error,omitempty"`
}

type multiSummary struct {
	Nodes []nodeSummary `json:"nodes"`
	Calls []callSummary `json:"calls"`
}

type liveNode struct {
	info   discovered
	client pb.InferenceClient
	owners map[string][]string // task -> services of this node offering it
}

func runAll(service, iface string, expect, rounds int, tasks []string, imageData []byte, imageMime string, timeout time.Duration) {
	found := map[string]discovered{}
	for attempt := 0; attempt < 8 && len(found) < expect; attempt++ {
		list, err := discover(service, iface, 1500*time.Millisecond)
		if err != nil {
			fail("discovery: %v", err)
		}
		for _, d := range list {
			found[d.Instance] = d
		}
	}
	out := multiSummary{}
	var live []*liveNode
	for _, d := range found {
		summary := nodeSummary{discovered: d}
		conn, err := dial(fmt.Sprintf("%s:%d", d.Address, d.Port))
		if err != nil {
			summary.Error = err.Error()
			out.Nodes = append(out.Nodes, summary)
			continue
		}
		defer conn.Close()
		caps, fetch := fetchCapabilities(conn, timeout)
		if !fetch.Compatible {
			summary.Error = "capabilities: " + fetch.Reason // the SDK never routes to such a node
			out.Nodes = append(out.Nodes, summary)
			continue
		}
		node := &liveNode{info: d, client: pb.NewInferenceClient(conn), owners: map[string][]string{}}
		for _, c := range caps {
			summary.Services = append(summary.Services, c.ServiceName)
			for _, t := range c.Tasks {
				node.owners[t.Name] = append(node.owners[t.Name], c.ServiceName)
			}
		}
		live = append(live, node)
		out.Nodes = append(out.Nodes, summary)
	}
	for _, task := range tasks {
		var offering []*liveNode
		for _, n := range live {
			if len(n.owners[task]) > 0 {
				offering = append(offering, n)
			}
		}
		for i := 0; i < rounds*len(offering); i++ {
			node := offering[i%len(offering)] // round-robin over the capable nodes
			payload, mime := imageData, imageMime
			if strings.HasPrefix(task, "semantic_text") {
				payload, mime = []byte(fmt.Sprintf("query %d for %s", i, task)), "text/plain"
			}
			out.Calls = append(out.Calls, call(node, task, payload, mime, timeout))
		}
	}
	emit("WIREPROBE-SUMMARY", out)
}

// call sends one request the way the SDK does (meta.service resolved from the capabilities,
// chunked above 1 MiB) and reports who answered.
func call(node *liveNode, task string, payload []byte, mime string, timeout time.Duration) callSummary {
	result := callSummary{Task: task, SentTo: node.info.Instance}
	meta := map[string]string{}
	if len(node.owners[task]) == 1 {
		meta["service"] = node.owners[task][0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	responses, err := infer(ctx, node.client, chunk(task, payload, mime, "", meta))
	if err != nil {
		st, _ := status.FromError(err)
		result.Code, result.Error = st.Code().String(), st.Message()
		return result
	}
	final, err := assemble(responses)
	if err != nil {
		result.Error = "assemble: " + err.Error()
		return result
	}
	result.NodeID, result.ServedBy = final.Meta["node_id"], final.Meta["lumen.served_by"]
	result.ModelID, result.Schema = final.Meta["model_id"], final.ResultSchema
	return result
}
