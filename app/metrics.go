package app

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var commands = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "idstream_commands_total",
	Help: "Commands run, by command and outcome.",
}, []string{"command", "outcome"})
