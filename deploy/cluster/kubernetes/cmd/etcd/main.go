// Command etcd is etcd's own server command (go.etcd.io/etcd/server/v3/etcdmain), at the version
// k8s.io/kubernetes pins, so the cluster's store is the one its apiserver is tested with.
// Upstream's main.go at the root of the etcd repository does exactly this (Apache-2.0, The etcd Authors).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
