module example.com/profiler/gofix

go 1.19
