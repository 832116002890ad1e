// Command coredns is CoreDNS v1.12.0 with the plugins of the cluster's Corefile only.
//
// Upstream's coredns.go imports core/plugin, which links every plugin (the cloud DNS ones pull
// in the AWS, Azure and Google SDKs). A plugin registers itself in its package's init, and the
// server orders plugins by its fixed directive list (core/dnsserver/zdirectives.go), so importing
// fewer packages changes nothing else (Apache-2.0, The CoreDNS Authors).
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
