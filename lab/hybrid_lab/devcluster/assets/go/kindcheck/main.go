// Command kind-config-check reads a kind cluster configuration the way `kind create
// cluster --config FILE` does (kind v0.30's loader, pkg/internal/apis/config/encoding):
// kind and apiVersion first, then a strict decode into kind's own v1alpha4 types, where
// an unknown or misspelt field is an error. It also checks node roles, which kind only
// validates when it creates the cluster. Exit 0 with a one-line summary, or 1 naming the
// file and the problem.
package main

import (
	"bytes"
	"fmt"
	"os"

	yaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

type typeMeta struct {
	Kind       string `yaml:"kind,omitempty"`
	APIVersion string `yaml:"apiVersion,omitempty"`
}

func check(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	meta := typeMeta{}
	if err := yaml.Unmarshal(raw, &meta); err != nil {
		return "", fmt.Errorf("could not determine kind / apiVersion: %w", err)
	}
	if meta.APIVersion != "kind.x-k8s.io/v1alpha4" || meta.Kind != "Cluster" {
		return "", fmt.Errorf("want kind Cluster, apiVersion kind.x-k8s.io/v1alpha4 (got %q, %q)", meta.Kind, meta.APIVersion)
	}
	cluster := v1alpha4.Cluster{}
	decoder := yaml.NewDecoder(bytes.NewReader(raw))
	decoder.KnownFields(true)
	if err := decoder.Decode(&cluster); err != nil {
		return "", fmt.Errorf("unable to decode config: %w", err)
	}
	controlPlanes, workers := 0, 0
	for i, node := range cluster.Nodes {
		switch node.Role {
		case v1alpha4.ControlPlaneRole, "":
			controlPlanes++
		case v1alpha4.WorkerRole:
			workers++
		default:
			return "", fmt.Errorf("nodes[%d].role: %q is neither %q nor %q", i, node.Role, v1alpha4.ControlPlaneRole, v1alpha4.WorkerRole)
		}
	}
	if len(cluster.Nodes) > 0 && controlPlanes == 0 {
		return "", fmt.Errorf("nodes: no control-plane node")
	}
	return fmt.Sprintf("cluster %q: %d control-plane and %d worker nodes", cluster.Name, controlPlanes, workers), nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kind-config-check FILE")
		os.Exit(2)
	}
	summary, err := check(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	fmt.Printf("%s: %s\n", os.Args[1], summary)
}
