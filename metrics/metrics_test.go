package metrics

import (
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape fetches h like Prometheus would and parses the text exposition.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Contains(t, rec.Header().Get("Content-Type"), "text/plain")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	require.NoError(t, err)
	return fams
}

// find returns the series of family name whose labels are exactly labels,
// or nil.
func find(fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	mf := fams[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, lp := range m.GetLabel() {
			if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
				continue next
			}
		}
		return m
	}
	return nil
}

// counter returns the value of a counter series, failing if it is absent.
func counter(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m := find(fams, name, labels)
	require.NotNil(t, m, "%s%v missing", name, labels)
	require.NotNil(t, m.GetCounter(), "%s is not a counter", name)
	return m.GetCounter().GetValue()
}

// gauge returns the value of a gauge series without labels, failing if it
// is absent.
func gauge(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	m := find(fams, name, nil)
	require.NotNil(t, m, "%s missing", name)
	require.NotNil(t, m.GetGauge(), "%s is not a gauge", name)
	return m.GetGauge().GetValue()
}

func rc(route, code string) map[string]string { return map[string]string{"route": route, "code": code} }
func r(route string) map[string]string        { return map[string]string{"route": route} }

func TestObserveCountsByRouteAndCode(t *testing.T) {
	m := New(Sources{})
	for range 3 {
		m.Observe("get", 200, time.Millisecond)
	}
	m.Observe("get", 404, time.Millisecond)
	m.Observe("set", 200, time.Millisecond)
	m.Observe("casoc", 409, time.Millisecond)

	fams := scrape(t, m.Handler())
	assert.Equal(t, 3.0, counter(t, fams, "rendezvous_http_requests_total", rc("get", "200")))
	assert.Equal(t, 1.0, counter(t, fams, "rendezvous_http_requests_total", rc("get", "404")))
	assert.Equal(t, 1.0, counter(t, fams, "rendezvous_http_requests_total", rc("set", "200")))
	assert.Equal(t, 1.0, counter(t, fams, "rendezvous_http_requests_total", rc("casoc", "409")))
	assert.Len(t, fams["rendezvous_http_requests_total"].GetMetric(), 4, "a (route, code) series appears only once used")

	m.Observe("get", 200, time.Millisecond)
	fams = scrape(t, m.Handler())
	assert.Equal(t, 4.0, counter(t, fams, "rendezvous_http_requests_total", rc("get", "200")))
}

func TestObserveUnlistedRouteIsUnknown(t *testing.T) {
	m := New(Sources{})
	m.Observe("/get/some-key", 200, time.Millisecond)
	m.Observe("", 404, time.Millisecond)
	m.Observe("unknown", 404, time.Millisecond)

	fams := scrape(t, m.Handler())
	assert.Equal(t, 1.0, counter(t, fams, "rendezvous_http_requests_total", rc("unknown", "200")))
	assert.Equal(t, 2.0, counter(t, fams, "rendezvous_http_requests_total", rc("unknown", "404")))
	assert.Nil(t, find(fams, "rendezvous_http_requests_total", rc("/get/some-key", "200")))
}

func TestObserveEveryRoute(t *testing.T) {
	m := New(Sources{})
	for _, name := range routeNames {
		assert.Equal(t, name, routeNames[routeID(name)], "routeID and routeNames disagree")
		m.Observe(name, 200, time.Millisecond)
	}
	fams := scrape(t, m.Handler())
	for _, name := range routeNames {
		assert.Equal(t, 1.0, counter(t, fams, "rendezvous_http_requests_total", rc(name, "200")), name)
	}
}

func TestObserveUncommonStatus(t *testing.T) {
	// net/http lets handlers write any code in 100..999; those outside the
	// array cache take the map path and must still be counted.
	m := New(Sources{})
	m.Observe("get", 799, time.Millisecond)
	m.Observe("get", 799, time.Millisecond)
	m.Observe("get", 599, time.Millisecond)
	m.Observe("get", 100, time.Millisecond)

	fams := scrape(t, m.Handler())
	assert.Equal(t, 2.0, counter(t, fams, "rendezvous_http_requests_total", rc("get", "799")))
	assert.Equal(t, 1.0, counter(t, fams, "rendezvous_http_requests_total", rc("get", "599")))
	assert.Equal(t, 1.0, counter(t, fams, "rendezvous_http_requests_total", rc("get", "100")))
}

func TestRateLimited(t *testing.T) {
	m := New(Sources{})
	m.Observe("set", 429, time.Millisecond)
	m.Observe("set", 429, time.Millisecond)
	m.Observe("get", 429, time.Millisecond)
	m.Observe("get", 200, time.Millisecond)
	m.Observe("cas", 503, time.Millisecond)

	fams := scrape(t, m.Handler())
	assert.Equal(t, 2.0, counter(t, fams, "rendezvous_rate_limited_total", r("set")))
	assert.Equal(t, 1.0, counter(t, fams, "rendezvous_rate_limited_total", r("get")))
	assert.Equal(t, 0.0, counter(t, fams, "rendezvous_rate_limited_total", r("cas")), "only 429 counts")
	assert.Equal(t, 2.0, counter(t, fams, "rendezvous_http_requests_total", rc("set", "429")),
		"a 429 is still a request")
	// Every route's series exists from the start, so rate() works on the
	// first refusal.
	assert.Len(t, fams["rendezvous_rate_limited_total"].GetMetric(), numRoutes)
}

func TestDurationHistogram(t *testing.T) {
	m := New(Sources{})
	took := []time.Duration{
		30 * time.Microsecond,  // first bucket
		50 * time.Microsecond,  // on the first bound: le is inclusive
		700 * time.Microsecond, // 1ms bucket
		20 * time.Millisecond,  // 25ms bucket
		3 * time.Second,        // only +Inf
	}
	var sum float64
	for i, d := range took {
		m.Observe("get", []int{200, 404, 429, 200, 500}[i], d)
		sum += d.Seconds()
	}
	m.Observe("set", 200, time.Millisecond)

	fams := scrape(t, m.Handler())
	mf := fams["rendezvous_http_request_duration_seconds"]
	require.NotNil(t, mf)
	assert.Equal(t, dto.MetricType_HISTOGRAM, mf.GetType())
	assert.Len(t, mf.GetMetric(), numRoutes, "every route's histogram exists from the start")

	h := find(fams, "rendezvous_http_request_duration_seconds", r("get")).GetHistogram()
	require.NotNil(t, h)
	assert.Equal(t, uint64(len(took)), h.GetSampleCount(), "count equals observations, whatever the status")
	assert.InDelta(t, sum, h.GetSampleSum(), 1e-9)

	cum := map[float64]uint64{}
	var bounds []float64
	for _, b := range h.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) {
			bounds = append(bounds, b.GetUpperBound())
		}
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	assert.Equal(t, durationBuckets, bounds)
	assert.Equal(t, 50e-6, bounds[0])
	assert.Equal(t, 2.5, bounds[len(bounds)-1])
	assert.Equal(t, uint64(2), cum[50e-6])
	assert.Equal(t, uint64(2), cum[500e-6])
	assert.Equal(t, uint64(3), cum[1e-3])
	assert.Equal(t, uint64(3), cum[10e-3])
	assert.Equal(t, uint64(4), cum[25e-3])
	assert.Equal(t, uint64(4), cum[2.5])

	hs := find(fams, "rendezvous_http_request_duration_seconds", r("set")).GetHistogram()
	assert.Equal(t, uint64(1), hs.GetSampleCount())
	hd := find(fams, "rendezvous_http_request_duration_seconds", r("del")).GetHistogram()
	assert.Equal(t, uint64(0), hd.GetSampleCount())
}

func TestSourcesReadAtScrapeTime(t *testing.T) {
	var keys, stored, watchers, dropped, journal atomic.Int64
	var snapMu sync.Mutex
	var snapAt time.Time
	var snapTook time.Duration
	var calls atomic.Int64
	m := New(Sources{
		Keys:            func() float64 { calls.Add(1); return float64(keys.Load()) },
		StoredBytes:     func() float64 { return float64(stored.Load()) },
		Watchers:        func() float64 { return float64(watchers.Load()) },
		DroppedWatchers: func() float64 { return float64(dropped.Load()) },
		JournalBytes:    func() float64 { return float64(journal.Load()) },
		LastSnapshot: func() (time.Time, time.Duration, bool) {
			snapMu.Lock()
			defer snapMu.Unlock()
			return snapAt, snapTook, !snapAt.IsZero()
		},
	})
	assert.Zero(t, calls.Load(), "sources are not read before a scrape")
	m.Observe("get", 200, time.Millisecond)
	assert.Zero(t, calls.Load(), "Observe does not read sources")

	keys.Store(10)
	stored.Store(1234)
	watchers.Store(3)
	dropped.Store(1)
	journal.Store(4096)
	fams := scrape(t, m.Handler())
	assert.Equal(t, int64(1), calls.Load())
	assert.Equal(t, 10.0, gauge(t, fams, "rendezvous_keys"))
	assert.Equal(t, 1234.0, gauge(t, fams, "rendezvous_stored_bytes"))
	assert.Equal(t, 3.0, gauge(t, fams, "rendezvous_watchers"))
	assert.Equal(t, 4096.0, gauge(t, fams, "rendezvous_journal_bytes"))
	assert.Equal(t, 1.0, counter(t, fams, "rendezvous_watchers_dropped_total", nil))
	assert.Nil(t, fams["rendezvous_last_snapshot_timestamp_seconds"], "absent before the first snapshot")
	assert.Nil(t, fams["rendezvous_last_snapshot_duration_seconds"], "absent before the first snapshot")

	keys.Store(7)
	stored.Store(99)
	watchers.Store(0)
	dropped.Store(5)
	journal.Store(0)
	at := time.Unix(1_700_000_000, 250_000_000)
	snapMu.Lock()
	snapAt, snapTook = at, 1500*time.Millisecond
	snapMu.Unlock()
	fams = scrape(t, m.Handler())
	assert.Equal(t, int64(2), calls.Load())
	assert.Equal(t, 7.0, gauge(t, fams, "rendezvous_keys"))
	assert.Equal(t, 99.0, gauge(t, fams, "rendezvous_stored_bytes"))
	assert.Equal(t, 0.0, gauge(t, fams, "rendezvous_watchers"))
	assert.Equal(t, 0.0, gauge(t, fams, "rendezvous_journal_bytes"))
	assert.Equal(t, 5.0, counter(t, fams, "rendezvous_watchers_dropped_total", nil))
	assert.InDelta(t, 1_700_000_000.25, gauge(t, fams, "rendezvous_last_snapshot_timestamp_seconds"), 1e-3)
	assert.Equal(t, 1.5, gauge(t, fams, "rendezvous_last_snapshot_duration_seconds"))
}

func TestNilSourcesNotRegistered(t *testing.T) {
	fams := scrape(t, New(Sources{}).Handler())
	for _, name := range []string{
		"rendezvous_keys", "rendezvous_stored_bytes", "rendezvous_watchers", "rendezvous_watchers_dropped_total",
		"rendezvous_journal_bytes", "rendezvous_last_snapshot_timestamp_seconds", "rendezvous_last_snapshot_duration_seconds",
	} {
		assert.NotContains(t, fams, name)
	}
	// The request metrics and the runtime collectors are always there.
	for _, name := range []string{
		"rendezvous_http_request_duration_seconds", "rendezvous_rate_limited_total", "go_goroutines", "go_memstats_heap_alloc_bytes",
	} {
		assert.Contains(t, fams, name)
	}
	if runtime.GOOS == "linux" {
		assert.Contains(t, fams, "process_resident_memory_bytes")
		assert.Contains(t, fams, "process_cpu_seconds_total")
	}

	// One source set registers just that one.
	fams = scrape(t, New(Sources{Keys: func() float64 { return 1 }}).Handler())
	assert.Contains(t, fams, "rendezvous_keys")
	assert.NotContains(t, fams, "rendezvous_stored_bytes")
}

func TestOwnRegistry(t *testing.T) {
	// Two instances do not collide, as they would on the global registry.
	a, b := New(Sources{}), New(Sources{})
	a.Observe("get", 200, time.Millisecond)
	fams := scrape(t, b.Handler())
	assert.Nil(t, find(fams, "rendezvous_http_requests_total", rc("get", "200")))
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	assert.NotPanics(t, func() { m.Observe("get", 429, time.Second) })
	assert.Zero(t, testing.AllocsPerRun(100, func() { m.Observe("get", 200, time.Millisecond) }))

	// A metrics-off config can mount Handler anyway: it answers 404.
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	assert.Equal(t, http.StatusNotFound, rec.Code)

	// Through an interface, as handlers.Config holds it.
	var o interface {
		Observe(route string, status int, took time.Duration)
	} = m
	assert.NotPanics(t, func() { o.Observe("set", 200, time.Millisecond) })
}

func TestObserveDoesNotAllocate(t *testing.T) {
	m := New(Sources{})
	type req struct {
		route  string
		status int
	}
	reqs := []req{
		{"get", 200}, {"get", 404}, {"set", 200}, {"set", 429}, {"cas", 409}, {"casoc", 409},
		{"del", 403}, {"landing", 200}, {"nope", 404}, {"watch", 200}, {"get", 799}, // 799: map path
	}
	for _, q := range reqs { // warm-up creates each counter once
		m.Observe(q.route, q.status, time.Millisecond)
	}
	for _, q := range reqs {
		allocs := testing.AllocsPerRun(1000, func() { m.Observe(q.route, q.status, 123*time.Microsecond) })
		assert.Zero(t, allocs, "Observe(%q, %d) allocates", q.route, q.status)
	}
}

func TestConcurrentFirstUse(t *testing.T) {
	// Goroutines racing to create the same counter must all land on one
	// series; run with -race.
	m := New(Sources{})
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range each {
				m.Observe("set", 200, time.Microsecond)
				m.Observe("get", 200+i%3, time.Microsecond)
				m.Observe("get", 900, time.Microsecond)
			}
		})
	}
	// Scrape concurrently with the writers too.
	wg.Go(func() {
		for range 5 {
			rec := httptest.NewRecorder()
			m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		}
	})
	wg.Wait()

	fams := scrape(t, m.Handler())
	assert.Equal(t, float64(goroutines*each), counter(t, fams, "rendezvous_http_requests_total", rc("set", "200")))
	assert.Equal(t, float64(goroutines*each), counter(t, fams, "rendezvous_http_requests_total", rc("get", "900")))
	var get2xx float64
	for _, code := range []string{"200", "201", "202"} {
		get2xx += counter(t, fams, "rendezvous_http_requests_total", rc("get", code))
	}
	assert.Equal(t, float64(goroutines*each), get2xx)
	h := find(fams, "rendezvous_http_request_duration_seconds", r("get")).GetHistogram()
	assert.Equal(t, uint64(2*goroutines*each), h.GetSampleCount())
}

func BenchmarkObserve(b *testing.B) {
	m := New(Sources{})
	type req struct {
		route  string
		status int
	}
	// A plausible mix: mostly reads, some writes, a few refusals.
	reqs := []req{
		{"get", 200}, {"get", 200}, {"get", 404}, {"set", 200}, {"get", 200},
		{"cas", 409}, {"get", 200}, {"set", 429}, {"del", 200}, {"landing", 200},
	}
	for _, q := range reqs {
		m.Observe(q.route, q.status, time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			q := reqs[i%len(reqs)]
			m.Observe(q.route, q.status, 180*time.Microsecond)
			i++
		}
	})
}
