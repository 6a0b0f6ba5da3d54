// Fixture for the Go tests: a pure-Go program (no cgo) whose threads the
// profiler must name from outside. `gofix MODE SECONDS`:
//   idle     main sleeps; the runtime keeps sysmon and idle Ms around
//   burn     main.burnGo burns CPU on the main goroutine
//   syscalls goroutines block in raw syscalls (read on a pipe that is
//            written after SECONDS/2, and nanosleep), so the runtime hands
//            their Ps off and starts new Ms
//   gc       allocates hard, so GC background mark workers run
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

//go:noinline
func burnGo(d time.Duration) uint64 {
	end := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(end) {
		for i := 0; i < 10000; i++ {
			x = x*6364136223846793005 + uint64(i)
		}
	}
	return x
}

//go:noinline
func blockInRead(fd int) {
	buf := make([]byte, 1)
	syscall.Read(fd, buf)
}

//go:noinline
func sleepInNanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	syscall.Nanosleep(&ts, nil)
}

var sink [][]byte

//go:noinline
func allocate(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for i := 0; i < 1000; i++ {
			sink = append(sink, make([]byte, 4096))
		}
		if len(sink) > 20000 {
			sink = nil
		}
	}
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: gofix idle|burn|syscalls|gc SECONDS")
		os.Exit(2)
	}
	secs, err := strconv.ParseFloat(os.Args[2], 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad SECONDS:", err)
		os.Exit(2)
	}
	d := time.Duration(secs * float64(time.Second))
	fmt.Printf("ready %d GOMAXPROCS=%d\n", os.Getpid(), runtime.GOMAXPROCS(0))
	switch os.Args[1] {
	case "idle":
		time.Sleep(d)
	case "burn":
		burnGo(d)
	case "syscalls":
		var p [2]int
		if err := syscall.Pipe(p[:]); err != nil {
			panic(err)
		}
		done := make(chan bool)
		go func() { blockInRead(p[0]); done <- true }()
		go func() { sleepInNanosleep(d / 2); done <- true }()
		time.Sleep(d / 2)
		syscall.Write(p[1], []byte("x"))
		<-done
		<-done
		time.Sleep(d / 4)
	case "gc":
		allocate(d)
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
