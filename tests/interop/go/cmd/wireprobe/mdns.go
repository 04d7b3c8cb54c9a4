package main

// DNS-SD discovery the way the Lumen Go SDK v1.4 line does it (pkg/discovery/mdns_query.go and
// mdns_resolver.go, read at commit 5d105b226ccee48e6ebf37eb050144c3d3f33e37): one PTR question
// for "<type>.<domain>." with the unicast-response (QU) bit, sent to 224.0.0.251:5353 from a
// per-scan UDP socket, answers collected for a fixed window (3 s by default) from the answer,
// authority and additional sections. A node is admitted only when the chain holds: the PTR owner
// is the service name, the PTR target is "<instance>.<type>.<domain>." with no unescaped dot in
// <instance>, an SRV record exists for exactly that name, its target host is non-empty, its port
// is 1..65535 and at least one A/AAAA record exists for the target. TXT is optional; "k=v" pairs,
// a bare "k" is k="". Addresses are de-duplicated and sorted as strings, and the SDK dials the
// FIRST one. Names compare case-insensitively.
//
// Difference on purpose: the SDK sends from every up, multicast-capable, non-loopback IPv4
// interface; the probe sends from the one address given with -iface (the tests advertise on
// loopback).

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

type discovered struct {
	Instance  string            `json:"instance"`
	Host      string            `json:"host"`
	Port      int               `json:"port"`
	Address   string            `json:"address"` // the one the SDK dials
	Addresses []string          `json:"addresses"`
	TXT       map[string]string `json:"txt"`
}

func discover(service, ifaceAddr string, window time.Duration) ([]discovered, error) {
	service = strings.ToLower(dns.Fqdn(service))
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ifaceAddr), Port: 0})
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	defer conn.Close()
	pc := ipv4.NewPacketConn(conn)
	if iface := interfaceFor(ifaceAddr); iface != nil {
		if err := pc.SetMulticastInterface(iface); err != nil {
			return nil, fmt.Errorf("multicast interface %s: %w", iface.Name, err)
		}
	}
	_ = pc.SetMulticastLoopback(true)
	query := new(dns.Msg)
	query.Id = 0
	query.RecursionDesired = false
	query.Question = []dns.Question{{Name: service, Qtype: dns.TypePTR, Qclass: dns.ClassINET | 0x8000}}
	wire, err := query.Pack()
	if err != nil {
		return nil, err
	}
	group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	if _, err := conn.WriteToUDP(wire, group); err != nil {
		return nil, fmt.Errorf("send query: %w", err)
	}
	type ptr struct{ owner, target string }
	var ptrs []ptr
	srvs := map[string][]*dns.SRV{}
	txts := map[string][]string{}
	addrs := map[string][]string{}
	buffer := make([]byte, 65536)
	deadline := time.Now().Add(window)
	for {
		_ = conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFromUDP(buffer)
		if err != nil {
			break
		}
		msg := new(dns.Msg)
		if msg.Unpack(buffer[:n]) != nil || !msg.Response {
			continue
		}
		records := append(append(append([]dns.RR{}, msg.Answer...), msg.Ns...), msg.Extra...)
		for _, rr := range records {
			key := strings.ToLower(rr.Header().Name)
			switch v := rr.(type) {
			case *dns.PTR:
				ptrs = append(ptrs, ptr{owner: key, target: strings.ToLower(v.Ptr)})
			case *dns.SRV:
				srvs[key] = append(srvs[key], v)
			case *dns.TXT:
				txts[key] = append(txts[key], v.Txt...)
			case *dns.A:
				addrs[key] = append(addrs[key], v.A.String())
			case *dns.AAAA:
				addrs[key] = append(addrs[key], v.AAAA.String())
			}
		}
	}
	seen := map[string]bool{}
	var out []discovered
	for _, p := range ptrs {
		if p.owner != service || seen[p.target] {
			continue // the SDK rejects a PTR whose owner is not the configured service
		}
		seen[p.target] = true
		instance, ok := strictInstance(p.target, service)
		if !ok {
			continue
		}
		for _, srv := range srvs[p.target] {
			host := strings.TrimSuffix(strings.TrimSpace(srv.Target), ".")
			if host == "" || srv.Port == 0 {
				continue
			}
			addresses := normalizeAddresses(addrs[strings.ToLower(dns.Fqdn(srv.Target))])
			if len(addresses) == 0 {
				continue // "matching service has no usable address"
			}
			out = append(out, discovered{
				Instance: instance, Host: host, Port: int(srv.Port),
				Address: addresses[0], Addresses: addresses, TXT: parseTXT(txts[p.target]),
			})
		}
	}
	return out, nil
}

// strictInstance: "<instance>.<service>" with a non-empty instance that has no unescaped dot.
func strictInstance(name, service string) (string, bool) {
	suffix := "." + service
	if len(name) <= len(suffix) || !strings.HasSuffix(name, suffix) {
		return "", false
	}
	instance := name[:len(name)-len(suffix)]
	escaped := false
	for _, c := range instance {
		if c == '\\' {
			escaped = !escaped
			continue
		}
		if c == '.' && !escaped {
			return "", false
		}
		escaped = false
	}
	return instance, instance != ""
}

func normalizeAddresses(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range in {
		a = strings.TrimSpace(strings.Trim(a, "[]"))
		if a == "" || seen[a] || net.ParseIP(a) == nil {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func parseTXT(records []string) map[string]string {
	out := map[string]string{}
	for _, record := range records {
		key, value, _ := strings.Cut(record, "=")
		if key != "" {
			out[key] = value
		}
	}
	return out
}

func interfaceFor(addr string) *net.Interface {
	ip := net.ParseIP(addr)
	ifaces, _ := net.Interfaces()
	for i := range ifaces {
		list, _ := ifaces[i].Addrs()
		for _, a := range list {
			if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.Equal(ip) {
				return &ifaces[i]
			}
		}
	}
	return nil
}
