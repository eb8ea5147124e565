// Command halvm-rehearse-job is one job of the local rehearsal of the CI
// release graph (`go run mage.go ci:rehearse`, release.Rehearse): a
// toolchain cell, the independent rebuild or the release job, each in a
// process of its own with its own local cache. The rehearsal builds it from
// this source tree and starts it with the job's request file.
//
//	halvm-rehearse-job REQUEST.json
package main

import (
	"fmt"
	"os"

	"github.com/halvm/halvm-release/release"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: halvm-rehearse-job REQUEST.json (started by the rehearsal of the CI graph)")
		os.Exit(2)
	}
	os.Exit(release.RehearseJob(os.Args[1]))
}
