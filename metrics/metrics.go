// Package metrics exposes the server's Prometheus metrics from a registry
// of its own (not the global one), so tests and embedders get exactly the
// series listed here.
//
// Per request, recorded by [Metrics.Observe]:
//
//	rendezvous_http_requests_total{route,code}           counter
//	rendezvous_http_request_duration_seconds{route}      histogram, 50µs .. 2.5s
//	rendezvous_rate_limited_total{route}                 counter, requests answered 429
//
// Read from [Sources] at scrape time, each only when its source is set:
//
//	rendezvous_keys                              gauge, live keys
//	rendezvous_stored_bytes                      gauge, bytes of keys and values held
//	rendezvous_watchers                          gauge, active watch/long-poll subscribers
//	rendezvous_watchers_dropped_total            counter, subscribers dropped for falling behind
//	rendezvous_requests_in_flight                gauge, requests counted against --max-in-flight
//	rendezvous_journal_bytes                     gauge, bytes in the current journal generation
//	rendezvous_last_snapshot_timestamp_seconds   gauge, Unix time of the last successful snapshot
//	rendezvous_last_snapshot_duration_seconds    gauge, how long that snapshot took
//
// The two snapshot gauges are absent until a snapshot has succeeded, rather
// than reporting a misleading 0. The Go runtime (go_*) and process
// (process_*) collectors are registered too.
//
// The route label takes one of a fixed set of names: get, set, los, cas,
// casoc, del, list, watch, landing, ip, health, metrics and unknown. Any
// other name is recorded as unknown, so a caller cannot grow the label set
// without bound. Every route's duration histogram and rate-limited counter
// exist from the start at 0; a (route, code) request counter appears on
// first use. The watch route's durations measure whole long polls and
// streams, so they mostly land in the top buckets or +Inf.
//
// Observe does not allocate once each (route, code) pair has been seen:
// counters are cached in a fixed array indexed by route and status.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are read at scrape time (GaugeFunc/CounterFunc), so the hot path
// pays nothing for them. Any may be nil, and then its metric is not
// registered. Each must be safe to call from the scraping goroutine
// concurrently with the server.
type Sources struct {
	// Keys returns the number of live keys (ttlstore.Store.Len).
	Keys func() float64
	// StoredBytes returns the bytes of keys and values held.
	StoredBytes func() float64
	// Watchers returns the active watch/long-poll subscribers.
	Watchers func() float64
	// DroppedWatchers returns how many subscribers have been dropped for
	// falling behind since start; it must never decrease.
	DroppedWatchers func() float64
	// InFlight returns the requests counted against the cap of requests
	// in flight (policy.Service.InFlight).
	InFlight func() float64
	// JournalBytes returns the size of the current journal generation.
	JournalBytes func() float64
	// LastSnapshot returns when the last successful snapshot finished and
	// how long it took; ok is false until one has succeeded.
	LastSnapshot func() (at time.Time, took time.Duration, ok bool)
}

// routeNames are the values the route label may take; the index is the
// route id. unknown must stay last: unknownRoute is its id.
var routeNames = [...]string{
	"get", "set", "los", "cas", "casoc", "del", "list", "watch", "landing", "ip", "health", "metrics", "txn",
	"kv_metadata", "kv_snapshot_read", "kv_atomic_write", "kv_watch", "unknown",
}

const (
	numRoutes    = len(routeNames)
	unknownRoute = numRoutes - 1
)

// routeID maps a route name to its index in routeNames; a name outside the
// set maps to unknown. A switch compiles to length and byte comparisons:
// no hashing, no allocation.
func routeID(route string) int {
	switch route {
	case "get":
		return 0
	case "set":
		return 1
	case "los":
		return 2
	case "cas":
		return 3
	case "casoc":
		return 4
	case "del":
		return 5
	case "list":
		return 6
	case "watch":
		return 7
	case "landing":
		return 8
	case "ip":
		return 9
	case "health":
		return 10
	case "metrics":
		return 11
	case "txn":
		return 12
	case "kv_metadata":
		return 13
	case "kv_snapshot_read":
		return 14
	case "kv_atomic_write":
		return 15
	case "kv_watch":
		return 16
	}
	return unknownRoute
}

// Status codes in [minStatus, maxStatus) use the lock-free cache; any other
// code net/http lets through (600..999) takes a mutex-guarded map.
const (
	minStatus = 100
	maxStatus = 600
)

// durationBuckets suit a fast in-memory KV service: most requests finish
// in tens to hundreds of microseconds; the top buckets catch stalls
// (fsync, a slow client body) and long polls.
var durationBuckets = []float64{
	50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
	1, 2.5,
}

// counterRef boxes a Counter so that it can sit behind an atomic.Pointer.
type counterRef struct{ c prometheus.Counter }

// Metrics records request metrics and serves them. A nil *Metrics is
// valid: Observe does nothing and Handler answers 404.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	durations   [numRoutes]prometheus.Observer
	rateLimited [numRoutes]prometheus.Counter

	// counters caches requests.WithLabelValues(route, code) for common
	// codes; entries are filled once and never change.
	counters [numRoutes][maxStatus - minStatus]atomic.Pointer[counterRef]

	mu    sync.Mutex
	other map[otherKey]prometheus.Counter // codes outside [minStatus, maxStatus)
}

type otherKey struct {
	route  int
	status int
}

// New returns metrics over a fresh registry holding the request metrics,
// the given sources, and the Go runtime and process collectors.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rendezvous_http_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
		other: make(map[otherKey]prometheus.Counter),
	}
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rendezvous_http_request_duration_seconds",
		Help:    "Time spent handling HTTP requests, by route.",
		Buckets: durationBuckets,
	}, []string{"route"})
	rateLimited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rendezvous_rate_limited_total",
		Help: "Requests refused with 429 Too Many Requests, by route.",
	}, []string{"route"})
	for id, name := range routeNames {
		m.durations[id] = durations.WithLabelValues(name)
		m.rateLimited[id] = rateLimited.WithLabelValues(name)
	}
	reg.MustRegister(
		m.requests, durations, rateLimited,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	gauge := func(name, help string, f func() float64) {
		if f != nil {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
		}
	}
	gauge("rendezvous_keys", "Live keys in the store.", src.Keys)
	gauge("rendezvous_stored_bytes", "Bytes of keys and values held in the store.", src.StoredBytes)
	gauge("rendezvous_watchers", "Active watch and long-poll subscribers.", src.Watchers)
	gauge("rendezvous_requests_in_flight", "Requests being served that count against the cap of requests in flight.", src.InFlight)
	gauge("rendezvous_journal_bytes", "Bytes in the current journal generation.", src.JournalBytes)
	if src.DroppedWatchers != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "rendezvous_watchers_dropped_total",
			Help: "Watch subscribers dropped for falling behind.",
		}, src.DroppedWatchers))
	}
	if src.LastSnapshot != nil {
		reg.MustRegister(snapshotCollector(src.LastSnapshot))
	}
	return m
}

// Observe records one request: route is one of the fixed route names (any
// other counts as "unknown"), status the HTTP status written, took the
// handler's duration. A 429 also counts in rendezvous_rate_limited_total.
// After the first request with a given (route, status), Observe does not
// allocate.
func (m *Metrics) Observe(route string, status int, took time.Duration) {
	if m == nil {
		return
	}
	id := routeID(route)
	m.counter(id, status).Inc()
	m.durations[id].Observe(took.Seconds())
	if status == http.StatusTooManyRequests {
		m.rateLimited[id].Inc()
	}
}

// counter returns the request counter for (route id, status), creating it
// on first use.
func (m *Metrics) counter(id, status int) prometheus.Counter {
	if status >= minStatus && status < maxStatus {
		slot := &m.counters[id][status-minStatus]
		if ref := slot.Load(); ref != nil {
			return ref.c
		}
		// Racing first uses get the same child from the vec, so whichever
		// store wins, every increment lands on the one series.
		ref := &counterRef{m.requests.WithLabelValues(routeNames[id], strconv.Itoa(status))}
		slot.Store(ref)
		return ref.c
	}
	k := otherKey{id, status}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.other[k]
	if !ok {
		c = m.requests.WithLabelValues(routeNames[id], strconv.Itoa(status))
		m.other[k] = c
	}
	return c
}

// Handler serves the registry in the Prometheus exposition formats. At
// most a few scrapes run at once; more are answered 503.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg, // adds promhttp_metric_handler_errors_total
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

var (
	snapshotAtDesc = prometheus.NewDesc("rendezvous_last_snapshot_timestamp_seconds",
		"Unix time at which the last successful snapshot finished.", nil, nil)
	snapshotTookDesc = prometheus.NewDesc("rendezvous_last_snapshot_duration_seconds",
		"How long the last successful snapshot took.", nil, nil)
)

// snapshotCollector reports the last snapshot, or nothing before the first
// one succeeds: an absent series reads as "unknown", where a 0 timestamp
// would read as "55 years overdue".
type snapshotCollector func() (time.Time, time.Duration, bool)

func (snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- snapshotAtDesc
	ch <- snapshotTookDesc
}

func (f snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	at, took, ok := f()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(snapshotAtDesc, prometheus.GaugeValue, float64(at.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(snapshotTookDesc, prometheus.GaugeValue, took.Seconds())
}
