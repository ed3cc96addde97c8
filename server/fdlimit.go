package server

import "log/slog"

// fdReserve is the file descriptors kept beside the listeners'
// connections: the standard streams, the data file's lock, snapshot and
// journal generations, the listeners themselves and the runtime's poller.
const fdReserve = 64

// listenerCount is the number of listeners New binds for cfg, each of
// which may hold MaxConns connections. A front end added to New is
// counted here too.
func listenerCount(cfg *Config) int {
	n := 1
	if cfg.MetricsAddr != "" {
		n++
	}
	if cfg.PprofAddr != "" {
		n++
	}
	for _, addr := range []string{cfg.HTTPAddr, cfg.RespAddr, cfg.LineAddr} {
		if addr != "" {
			n++
		}
	}
	return n
}

// connBudget returns cfg.MaxConns, lowered (with a warning) when the
// process's open-file limit cannot hold that many connections on every
// listener besides fdReserve: a server that runs out of descriptors fails
// every accept, and its journal and snapshot writes too.
func connBudget(cfg *Config, log *slog.Logger) int {
	limit, ok := openFileLimit()
	if !ok {
		return cfg.MaxConns
	}
	n := listenerCount(cfg)
	per := (int64(min(limit, 1<<40)) - fdReserve) / int64(n)
	if int64(cfg.MaxConns) <= per {
		return cfg.MaxConns
	}
	lowered := int(max(per, 1))
	log.Warn("the open-file limit cannot hold MaxConns connections on every listener; lowering it (raise LimitNOFILE or ulimit -n to keep it)",
		"max_conns", cfg.MaxConns, "lowered_to", lowered, "open_file_limit", limit, "listeners", n)
	return lowered
}
