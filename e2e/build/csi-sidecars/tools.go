//go:build tools

// Package tools pins the Kubernetes CSI sidecars this module builds (their go.mod files have
// replace directives, so `go install pkg@version` refuses them; this module copies those lines).
package tools

import (
	_ "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"
)
