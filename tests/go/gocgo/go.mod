module example.com/profiler/gocgo

go 1.19
