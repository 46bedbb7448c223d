// Command pause holds a pod's namespaces open: it sleeps until SIGTERM or
// SIGINT and reaps any zombie re-parented to it (it is PID 1 when the pod
// shares its process namespace).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at link time by hack/images.sh.
var version = "dev"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("modelship-pause", version)
		return
	}
	if os.Getpid() != 1 {
		// Not fatal: kubelet runs us as PID 1, but a plain `ctr run` without a
		// new PID namespace still works as a smoke test.
		fmt.Fprintln(os.Stderr, "pause: warning: not running as PID 1")
	}

	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reapChildren()
			continue
		}
		fmt.Fprintf(os.Stderr, "pause: shutting down on %v\n", sig)
		return
	}
}

// reapChildren collects every exited child without blocking; one SIGCHLD may
// stand for several exits because pending signals coalesce.
func reapChildren() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
