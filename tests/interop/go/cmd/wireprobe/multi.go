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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
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

func runAll(service, iface string, expect, rounds int, tasks []string, imageData []byte) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, d := range found {
		summary := nodeSummary{discovered: d}
		address := fmt.Sprintf("%s:%d", d.Address, d.Port)
		conn, err := grpc.NewClient(address,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 3 * time.Second}),
		)
		if err != nil {
			summary.Error = err.Error()
			out.Nodes = append(out.Nodes, summary)
			continue
		}
		defer conn.Close()
		client := pb.NewInferenceClient(conn)
		caps, err := capabilities(ctx, client)
		if err != nil {
			summary.Error = "capabilities: " + err.Error()
			out.Nodes = append(out.Nodes, summary)
			continue
		}
		node := &liveNode{info: d, client: client, owners: map[string][]string{}}
		compatible := true
		for _, c := range caps {
			if c.ServiceName == "" || !strings.HasPrefix(c.ProtocolVersion, "1.") {
				compatible = false // the SDK never routes to such a node
			}
			summary.Services = append(summary.Services, c.ServiceName)
			for _, t := range c.Tasks {
				node.owners[t.Name] = append(node.owners[t.Name], c.ServiceName)
			}
		}
		if !compatible {
			summary.Error = "incompatible capabilities"
		} else {
			live = append(live, node)
		}
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
			payload, mime := imageData, "image/webp"
			if strings.HasPrefix(task, "semantic_text") {
				payload, mime = []byte(fmt.Sprintf("query %d for %s", i, task)), "text/plain"
			}
			meta := map[string]string{}
			if len(node.owners[task]) == 1 {
				meta["service"] = node.owners[task][0]
			}
			result := infer(ctx, node.client, task, payload, mime, meta)
			out.Calls = append(out.Calls, callSummary{
				Task: task, SentTo: node.info.Instance, NodeID: result.Meta["node_id"],
				ServedBy: result.Meta["lumen.served_by"], ModelID: result.Meta["model_id"],
				Schema: result.Schema, Code: result.Code, Error: result.Error,
			})
		}
	}
	emitAny(out)
}
