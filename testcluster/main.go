// Command testcluster is the real Kubernetes control plane of ephemerator's test tier: one
// multi-call binary built from the upstream modules, run as one process per role, so that only
// the upstream components' own code runs.
//
//	testcluster etcd [etcd flags]
//	testcluster kube-apiserver [kube-apiserver flags]
//	testcluster kube-controller-manager [kube-controller-manager flags]
//	testcluster kube-scheduler [kube-scheduler flags]
//	testcluster kwok [kwok flags]
//
// kwok plays the kubelet of fake nodes: with no --config it runs kwok's own default stages
// (node initialise and lease heartbeat; pod ready, complete, delete), the set kwokctl uses.
package main

import (
	"fmt"
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testcluster etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok [flags]")
		os.Exit(2)
	}
	role, args := os.Args[1], os.Args[2:]
	switch role {
	case "etcd":
		etcdmain.Main(append([]string{"etcd"}, args...))
	case "kube-apiserver":
		command := apiserver.NewAPIServerCommand()
		command.SetArgs(args)
		os.Exit(cli.Run(command))
	case "kube-controller-manager":
		command := controllermanager.NewControllerManagerCommand()
		command.SetArgs(args)
		os.Exit(cli.Run(command))
	case "kube-scheduler":
		command := scheduler.NewSchedulerCommand()
		command.SetArgs(args)
		os.Exit(cli.Run(command))
	case "kwok":
		os.Exit(runKwok(args))
	default:
		fmt.Fprintf(os.Stderr, "testcluster: unknown role %q\n", role)
		os.Exit(2)
	}
}
