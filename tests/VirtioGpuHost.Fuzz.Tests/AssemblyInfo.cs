// The mutation tests count the process's fds and mappings around each run: nothing else may
// run at the same time, or another test's sockets would look like a leak (or hide one).
[assembly: CollectionBehavior(DisableTestParallelization = true)]
