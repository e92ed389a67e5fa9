package app

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var commands = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "idstream_commands_total",
	Help: "Commands run, by command and outcome.",
}, []string{"command", "outcome"})

var otpSends = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "idstream_otp_sends_total",
	Help: "One-time codes handed to delivery, by channel and outcome (sent, failed).",
}, []string{"channel", "outcome"})

var otpChecks = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "idstream_otp_checks_total",
	Help: "One-time codes entered, by outcome (right, wrong).",
}, []string{"outcome"})
