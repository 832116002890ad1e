// Command cri-sweep stops and removes every pod sandbox (and so every container) the container
// runtime holds, through the CRI as the kubelet would. `make k8s-down` runs it after the kubelet
// has stopped: the runtime then tears down each pod's network (CNI DEL: veth, IP lease), its
// network namespace and its mounts, so nothing of the cluster outlives it. (crictl does the same
// with `rmp -fa`; it is not packaged for Debian 12.)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "the runtime's CRI socket, e.g. unix:///run/containerd/containerd.sock")
	timeout := flag.Duration("timeout", 60*time.Second, "for the whole sweep")
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "cri-sweep: --endpoint is required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := grpc.NewClient(*endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-sweep: %v\n", err)
		os.Exit(1)
	}
	defer conn.Close()
	client := runtimeapi.NewRuntimeServiceClient(conn)
	sandboxes, err := client.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-sweep: listing pod sandboxes: %v\n", err)
		os.Exit(1)
	}
	failed := 0
	for _, sandbox := range sandboxes.Items {
		name := sandbox.Metadata.Namespace + "/" + sandbox.Metadata.Name
		if _, err := client.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandbox.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-sweep: stopping %s: %v\n", name, err)
			failed++
			continue
		}
		if _, err := client.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandbox.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-sweep: removing %s: %v\n", name, err)
			failed++
		}
	}
	// Containers outside any sandbox should not exist; remove them too if they do.
	containers, err := client.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err == nil {
		for _, container := range containers.Containers {
			_, _ = client.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: container.Id, Timeout: 0})
			if _, err := client.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: container.Id}); err != nil {
				fmt.Fprintf(os.Stderr, "cri-sweep: removing container %s: %v\n", container.Id, err)
				failed++
			}
		}
	}
	fmt.Printf("removed %d pod sandboxes\n", len(sandboxes.Items))
	if failed > 0 {
		os.Exit(1)
	}
}
