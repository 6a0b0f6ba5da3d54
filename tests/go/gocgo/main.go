// Fixture for the cgo test: the main goroutine spends its time in C
// (usleep through cgo), so its thread runs C code. `gocgo SECONDS`.
package main

/*
#include <unistd.h>
static void c_sleep(int ms) { usleep(ms * 1000); }
*/
import "C"

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	secs := 1.0
	if len(os.Args) > 1 {
		if v, err := strconv.ParseFloat(os.Args[1], 64); err == nil {
			secs = v
		}
	}
	fmt.Printf("ready %d\n", os.Getpid())
	end := time.Now().Add(time.Duration(secs * float64(time.Second)))
	for time.Now().Before(end) {
		C.c_sleep(20)
	}
}
