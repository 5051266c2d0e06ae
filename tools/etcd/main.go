// Command etcd is upstream etcd built from the Go module proxy: etcd ships its
// server as a library (etcdmain), and this wrapper only gives it a main package.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
