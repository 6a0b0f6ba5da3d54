// Benchmark workload: a Go program with many goroutines in blocking
// syscalls. `gobench SECONDS`: 64 pairs of goroutines bounce a byte
// through pipes with raw read(2)/write(2) (each read blocks, so the
// runtime hands the P off and wakes or starts Ms), and 16 goroutines
// sleep 100 µs at a time in raw nanosleep(2). Prints `ready <pid>`, waits
// for a line on stdin, runs, prints `ops_per_sec N` (round trips plus
// sleeps per second).
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const pairs = 64
const sleepers = 16

func pipe() (int, int) {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		panic(err)
	}
	return p[0], p[1]
}

//go:noinline
func echo(r, w int) {
	b := make([]byte, 1)
	for {
		if n, err := syscall.Read(r, b); n != 1 || err != nil || b[0] == 0 {
			return
		}
		syscall.Write(w, b)
	}
}

//go:noinline
func bounce(stop *atomic.Bool, ops *atomic.Int64, w, r int) {
	b := []byte{1}
	n := int64(0)
	for !stop.Load() {
		syscall.Write(w, b)
		syscall.Read(r, b)
		n++
	}
	ops.Add(n)
	syscall.Write(w, []byte{0})
}

//go:noinline
func sleeper(stop *atomic.Bool, ops *atomic.Int64) {
	ts := syscall.NsecToTimespec(100_000)
	n := int64(0)
	for !stop.Load() {
		syscall.Nanosleep(&ts, nil)
		n++
	}
	ops.Add(n)
}

func main() {
	secs := 2.0
	if len(os.Args) > 1 {
		if v, err := strconv.ParseFloat(os.Args[1], 64); err == nil {
			secs = v
		}
	}
	fmt.Printf("ready %d\n", os.Getpid())
	bufio.NewReader(os.Stdin).ReadString('\n')
	var stop atomic.Bool
	var ops atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < pairs; i++ {
		ar, aw := pipe()
		br, bw := pipe()
		wg.Add(2)
		go func() { defer wg.Done(); echo(ar, bw) }()
		go func() { defer wg.Done(); bounce(&stop, &ops, aw, br) }()
	}
	for i := 0; i < sleepers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); sleeper(&stop, &ops) }()
	}
	time.Sleep(time.Duration(secs * float64(time.Second)))
	stop.Store(true)
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf("ops_per_sec %.0f\n", float64(ops.Load())/el)
}
