module example.com/profiler/gobench

go 1.19
