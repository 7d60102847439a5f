// A Starq worker in Go, standard library only (Go 1.19 or later).
//
//	STARQ_QUEUE=emails go run .
//
// It claims jobs with a long-poll, runs them (a batch at a time, one goroutine each), heart-beats each job's
// lease while it runs, and reports every outcome quoting the lease. The rules it follows, for any language:
// docs/worker-protocol.md. To port it, read it top to bottom: config, HTTP, the work, one job, the loop.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// --- Configuration, from the environment ------------------------------------------------------------------

const concurrency = 4 // jobs claimed (and run) at once: claim only as many as you can start now

var (
	starqURL = getenv("STARQ_URL", "http://127.0.0.1:8000")
	apiKey   = getenv("STARQ_API_KEY", "dev-key")
	queue    = os.Getenv("STARQ_QUEUE")
	jobsURL  = starqURL + "/api/v1/queues/" + url.PathEscape(queue) + "/jobs"
	worker   = fmt.Sprintf("go-%s-%d", hostname(), os.Getpid()) // shown in the dashboard and on each job
)

func getenv(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func hostname() string {
	name, _ := os.Hostname()
	return name
}

// Job is what a claim hands out (the fields this worker uses).
type Job struct {
	ID             string          `json:"id"`
	LeaseID        string          `json:"lease_id"`
	Payload        json.RawMessage `json:"payload"`
	ClaimedAt      time.Time       `json:"claimed_at"`
	LeaseExpiresAt time.Time       `json:"lease_expires_at"`
}

// --- HTTP ------------------------------------------------------------------------------------------------------

// call sends one request to the API and answers the status and the body; status 0 means no answer came
// (refused, reset, timed out, or ctx cancelled).
func call(ctx context.Context, method, path string, body any, timeout time.Duration) (int, []byte) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	data, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, jobsURL+path, bytes.NewReader(data))
	if err != nil {
		return 0, []byte(err.Error())
	}
	req.Header.Set("X-API-Key", apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, []byte(err.Error())
	}
	return resp.StatusCode, answer
}

// backoff pauses while the server is away: 0.5 s doubling up to 10 s, each pause drawn from the upper half of
// that (jitter, so a fleet of workers does not come back in lockstep). A stop signal (ctx) cuts it short.
type backoff struct{ next time.Duration }

var random = rand.New(rand.NewSource(time.Now().UnixNano())) // seeded: before Go 1.20 the global one is not

func (b *backoff) wait(ctx context.Context, why string) {
	if b.next == 0 {
		b.next = 500 * time.Millisecond
	}
	pause := b.next/2 + time.Duration(random.Int63n(int64(b.next/2)))
	if b.next *= 2; b.next > 10*time.Second {
		b.next = 10 * time.Second
	}
	log.Printf("%s; retrying in %.1f s", why, pause.Seconds())
	select {
	case <-time.After(pause):
	case <-ctx.Done():
	}
}

func (b *backoff) reset() { b.next = 0 }

// --- The work ----------------------------------------------------------------------------------------------------

// work takes the job's payload and returns its result (anything encoding/json can encode); an error fails the
// job with its message.
func work(raw json.RawMessage) (any, error) {
	var payload struct {
		N       *int64  `json:"n"`
		SleepMs int64   `json:"sleep_ms"`
		Fail    *string `json:"fail"`
	}
	if err := json.Unmarshal(raw, &payload); err != nil {
		return nil, err
	}
	time.Sleep(time.Duration(payload.SleepMs) * time.Millisecond)
	if payload.Fail != nil {
		return nil, errors.New(*payload.Fail)
	}
	if payload.N == nil {
		return nil, errors.New("the payload needs an integer n")
	}
	return map[string]any{"squared": *payload.N * *payload.N, "worker": "go"}, nil
}

// --- One job: heart-beat while it runs, then report --------------------------------------------------------

// runJob does not take the stop signal's context: a job in hand is finished and reported even while stopping.
func runJob(job Job) {
	// The lease lasts lease_expires_at − claimed_at (two server times: no clock skew). Extend it every half of that.
	half := job.LeaseExpiresAt.Sub(job.ClaimedAt) / 2
	done := make(chan struct{})
	lost := make(chan struct{}) // closed when the server says the job is not ours any more
	go func() {
		wait := half
		for {
			select {
			case <-done:
				return
			case <-time.After(wait):
			}
			lease := map[string]string{"lease_id": job.LeaseID}
			status, body := call(context.Background(), "PUT", "/"+job.ID+"/extend", lease, 10*time.Second)
			select {
			case <-done: // the job ended while this extend was on its way
				return
			default:
			}
			switch {
			case status == 200:
				wait = half
			case status == 404 || status == 409:
				// Expired and handed to another worker, or deleted: do not report it.
				log.Printf("job %s: lease lost (%d %s); its outcome will not be reported", job.ID, status, body)
				close(lost)
				return
			default: // no answer or 5xx: try again soon, while the lease lasts
				log.Printf("job %s: extend got %d %s; trying again in 1 s", job.ID, status, body)
				wait = time.Second
			}
		}
	}()

	result, err := work(job.Payload)
	close(done)
	select {
	case <-lost:
		return
	default:
	}
	if err != nil {
		// The error's first line is what the dashboard shows; details (a stack trace) may follow a blank line.
		report(job, "fail", map[string]any{"lease_id": job.LeaseID, "error": err.Error()})
	} else {
		report(job, "complete", map[string]any{"lease_id": job.LeaseID, "result": result})
	}
}

// report sends complete/fail. Repeating a report that quotes the lease is safe, so it is retried while there is
// no answer or a 5xx.
func report(job Job, outcome string, body map[string]any) {
	for attempt := 1; attempt <= 10; attempt++ {
		status, answer := call(context.Background(), "PUT", "/"+job.ID+"/"+outcome, body, 10*time.Second)
		switch {
		case status == 200:
			if outcome == "fail" {
				log.Printf("job %s: failed: %s", job.ID, body["error"])
			} else {
				log.Printf("job %s: completed", job.ID)
			}
			return
		case status >= 400 && status < 500:
			// 409: the lease moved on to another worker (or this was reported already); 413: result too large.
			log.Printf("job %s: %s refused: %d %s", job.ID, outcome, status, answer)
			return
		}
		time.Sleep(time.Duration(attempt) * time.Second) // 1 s, 2 s, 3 s, ...
	}
	log.Printf("job %s: gave up reporting it; its lease will expire and it will run again", job.ID)
}

// --- The loop: claim, run the batch, repeat --------------------------------------------------------------

func main() {
	log.SetFlags(0)
	log.SetPrefix("[" + worker + "] ")
	if queue == "" {
		log.Fatal("STARQ_QUEUE is not set: name the queue to work on")
	}
	maxJobs := -1 // STARQ_MAX_JOBS unset: forever
	if value := os.Getenv("STARQ_MAX_JOBS"); value != "" {
		var err error
		if maxJobs, err = strconv.Atoi(value); err != nil {
			log.Fatalf("STARQ_MAX_JOBS is not a number: %q", value)
		}
	}

	// SIGTERM or SIGINT (Ctrl-C) cancels ctx: that aborts the waiting claim (hanging up is enough: the server
	// puts back any job it took for it); the jobs in hand finish and are reported, then the loop ends.
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		log.Printf("%s: finishing the jobs in hand, claiming no more", <-signals)
		cancel()
	}()

	var pause backoff
	done := 0
	for ctx.Err() == nil && (maxJobs < 0 || done < maxJobs) {
		count := concurrency
		if maxJobs >= 0 && maxJobs-done < count {
			count = maxJobs - done
		}
		// The long-poll: the server answers as soon as a job is ready, or with no jobs after block_ms. The HTTP
		// timeout must be longer than block_ms.
		claim := map[string]any{"count": count, "block_ms": 30000, "worker": worker}
		status, body := call(ctx, "POST", "/claim", claim, 40*time.Second)
		if ctx.Err() != nil && status != 200 {
			break
		}
		if status == 401 {
			log.Fatal("401 unauthorized: the server refused STARQ_API_KEY; set it to one of the server's STARQ_API_KEYS")
		}
		var answer struct{ Jobs []Job }
		if status == 200 {
			if err := json.Unmarshal(body, &answer); err != nil {
				status, body = 0, []byte("unreadable answer: "+err.Error())
			}
		}
		if status != 200 {
			// No answer, 503 (the server's store is away), 404 (no such queue yet), ...: wait and claim again.
			if status == 0 {
				pause.wait(ctx, fmt.Sprintf("claim got no answer (%s)", body))
			} else {
				pause.wait(ctx, fmt.Sprintf("claim got %d %s", status, body))
			}
			continue
		}
		pause.reset()
		// Run the whole batch, then claim again. (A busier worker would claim again as each slot frees up.)
		var batch sync.WaitGroup
		for _, job := range answer.Jobs {
			batch.Add(1)
			go func(job Job) {
				defer batch.Done()
				runJob(job)
			}(job)
		}
		batch.Wait()
		done += len(answer.Jobs)
	}
	log.Printf("stopping after %d job(s)", done)
}
