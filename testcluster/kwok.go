package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	"sigs.k8s.io/kwok/pkg/config"
	"sigs.k8s.io/kwok/pkg/kwok/cmd"
	"sigs.k8s.io/kwok/pkg/log"
	"sigs.k8s.io/kwok/pkg/utils/signals"
)

// defaultStages are kwok's own stage documents, as kwokctl configures a cluster by default.
var defaultStages = []string{
	nodefast.DefaultNodeInit,
	nodeheartbeat.DefaultNodeHeartbeatWithLease,
	podfast.DefaultPodReady,
	podfast.DefaultPodComplete,
	podfast.DefaultPodDelete,
}

// runKwok runs kwok's command the way its own main does. kwok reads its configuration (the
// stages) from --config files only, so without one the default stages are written to a file
// in a temporary directory, removed at exit.
func runKwok(args []string) int {
	if !slices.ContainsFunc(args, func(arg string) bool {
		return arg == "-c" || strings.HasPrefix(arg, "--config")
	}) {
		dir, err := os.MkdirTemp("", "testcluster-kwok-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "testcluster kwok:", err)
			return 1
		}
		path := filepath.Join(dir, "stages.yaml")
		if err := os.WriteFile(path, []byte(strings.Join(defaultStages, "\n---\n")), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "testcluster kwok:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		args = append([]string{"--config=" + path}, args...)
	}
	// kwok's flag helpers parse os.Args themselves.
	os.Args = append([]string{"kwok"}, args...)
	// cobra merges pflag's global set into every command; the Kubernetes packages linked for
	// the other roles register a non-bool --version there, which breaks kwok's own --version.
	pflag.CommandLine = pflag.NewFlagSet("kwok", pflag.ExitOnError)

	flagset := pflag.NewFlagSet("global", pflag.ContinueOnError)
	flagset.ParseErrorsAllowlist.UnknownFlags = true
	flagset.Usage = func() {}
	ctx := signals.SetupSignalContext()
	ctx, logger := log.InitFlags(ctx, flagset)
	ctx, err := config.InitFlags(ctx, flagset)
	if err != nil {
		logger.Error("Init config flags", "err", err)
		return 1
	}
	command := cmd.NewCommand(ctx)
	command.PersistentFlags().AddFlagSet(flagset)
	command.SetArgs(args)
	if err := command.ExecuteContext(ctx); err != nil {
		logger.Error("Execute exit", "err", err)
		return 1
	}
	return 0
}
