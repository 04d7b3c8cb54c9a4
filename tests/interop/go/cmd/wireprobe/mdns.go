package main

// DNS-SD discovery the way the Lumen Go SDK v1.4 does it: one PTR question for the service type
// with the unicast-response bit, sent to 224.0.0.251:5353 from a per-scan UDP socket; the answer
// must carry PTR, SRV, TXT and A records (answers or additional section) for the node to be
// usable. The interface is chosen by address (the test advertises on loopback).

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

type discovered struct {
	Instance string            `json:"instance"`
	Host     string            `json:"host"`
	Port     int               `json:"port"`
	Address  string            `json:"address"`
	TXT      map[string]string `json:"txt"`
}

func discover(service, ifaceAddr string, window time.Duration) ([]discovered, error) {
	service = dns.Fqdn(service)
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
	query.Question = []dns.Question{{Name: service, Qtype: dns.TypePTR, Qclass: dns.ClassINET | 0x8000}}
	wire, err := query.Pack()
	if err != nil {
		return nil, err
	}
	group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	if _, err := conn.WriteToUDP(wire, group); err != nil {
		return nil, fmt.Errorf("send query: %w", err)
	}
	ptrs := map[string]bool{}
	srvs := map[string]*dns.SRV{}
	txts := map[string][]string{}
	addrs := map[string]string{}
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
		for _, rr := range append(append(msg.Answer, msg.Ns...), msg.Extra...) {
			key := strings.ToLower(rr.Header().Name)
			switch v := rr.(type) {
			case *dns.PTR:
				if strings.EqualFold(v.Hdr.Name, service) {
					ptrs[strings.ToLower(v.Ptr)] = true
				}
			case *dns.SRV:
				srvs[key] = v
			case *dns.TXT:
				txts[key] = append(txts[key], v.Txt...)
			case *dns.A:
				addrs[key] = v.A.String()
			}
		}
	}
	var out []discovered
	for instance := range ptrs {
		srv, ok := srvs[instance]
		if !ok {
			continue // the SDK cannot use a node without SRV
		}
		address, ok := addrs[strings.ToLower(srv.Target)]
		if !ok {
			continue // nor without an A record for the SRV target
		}
		txt := map[string]string{}
		for _, record := range txts[instance] {
			k, v, _ := strings.Cut(record, "=")
			if k != "" {
				txt[k] = v
			}
		}
		name := strings.TrimSuffix(strings.TrimSuffix(instance, "."), "."+strings.TrimSuffix(strings.ToLower(service), "."))
		out = append(out, discovered{Instance: name, Host: srv.Target, Port: int(srv.Port), Address: address, TXT: txt})
	}
	return out, nil
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
