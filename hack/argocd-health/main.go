// Command argocd-health runs a resource health check written in Lua the way Argo CD runs it:
// through Argo CD's own Lua VM (github.com/argoproj/argo-cd/v3/util/lua), the same sandbox,
// libraries and result checks as the application controller.
//
// Usage: argocd-health SCRIPT.lua < objects.json
//
// stdin holds a JSON array of Kubernetes objects; stdout gets one JSON line per object:
// {"status": "Healthy", "message": "..."} or {"error": "..."} when the script fails.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/argoproj/argo-cd/v3/util/lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

type verdict struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT.lua < objects.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var objects []map[string]any
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "stdin is not a JSON array of objects:", err)
		os.Exit(1)
	}
	// As the controller runs a health.lua from argocd-cm: the standard libraries stay closed
	// unless the customization asks for them (ours does not).
	vm := lua.VM{}
	out := json.NewEncoder(os.Stdout)
	for _, object := range objects {
		result, err := vm.ExecuteHealthLua(&unstructured.Unstructured{Object: object}, string(script))
		line := verdict{}
		if err != nil {
			line.Error = err.Error()
		} else {
			line.Status, line.Message = string(result.Status), result.Message
		}
		if err := out.Encode(line); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
