module starq-example-worker

go 1.19
