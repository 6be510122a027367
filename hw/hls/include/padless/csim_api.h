// padless C-simulation API (g++ builds only): how the host configures a C-simulation run and reads
// back what it measured. Included at the end of the top-level kernel so that one shared library holds
// the kernel and its instruments (sw/padless/csim.py loads it with ctypes).
//
//   padless_sim_configure(threaded, timed, ports, exact_depth, record_jobs, min_depth, compute)
//       threaded: processes as threads over bounded channels (0: sequential, Vitis csim_design order);
//       timed: per-process clocks (the cycle-annotated csim); ports: the port checker;
//       exact_depth: channels hold exactly their declared depth (the deadlock check); record_jobs: keep
//       per-(process, sequence, layer) intervals; min_depth: unused; compute: 0 skips the fast form's
//       arithmetic (timing-only runs of padded baselines).
//   padless_sim_memory(ideal)  timed runs: 0 models m_axi with the board's memory (config.h PADLESS_MAXI_*),
//       1 ideal memory (the upper bound).
//   padless_sim_cycles()  makespan of the last call, cycles (timed runs).
//   padless_sim_report(buf, len)  JSON: {"cycles", "deadlock", "thread_blocks" (blocking waits), "port_violations", "violations": [...],
//       "procs": [{"name", "busy", "stall_in", "stall_out", "first", "last", "runs"}], "ideal_memory",
//       "maxi": [{"port", "beats", "requests", "single", "stall"}]}; returns the bytes
//       needed (call again with a larger buffer when it exceeds len).
//   padless_sim_jobs(rows, max_rows)  rows of 5 int64 (process index in "procs", seq, layer, start, end);
//       returns the number of rows available.
#ifndef PADLESS_CSIM_API_H
#define PADLESS_CSIM_API_H

#include <stdio.h>

#include <string>

#include "sim_rt.h"

extern "C" int padless_sim_configure(int threaded, int timed, int ports, int exact_depth, int record_jobs,
                                     int min_depth, int compute) {
    ::padless::sim::cfg.compute = compute ? 1 : 0;
    ::padless::sim::cfg.threaded = threaded ? 1 : 0;
    ::padless::sim::cfg.timed = timed ? 1 : 0;
    ::padless::sim::cfg.ports = ports ? 1 : 0;
    ::padless::sim::cfg.exact_depth = exact_depth ? 1 : 0;
    ::padless::sim::cfg.record_jobs = record_jobs ? 1 : 0;
    ::padless::sim::cfg.min_depth = min_depth > 0 ? min_depth : 1;
    return 0;
}

// The m_axi memory model of timed runs (sim_rt.h): 0 the board's memory (config.h PADLESS_MAXI_*), 1 ideal
// memory (every beat there when asked: the upper bound of the engine).
extern "C" int padless_sim_memory(int ideal) {
    ::padless::sim::ideal_memory = ideal ? 1 : 0;
    return 0;
}

extern "C" int64_t padless_sim_cycles() { return ::padless::sim::me().clk; }

static std::string padless_json_str(const std::string &s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            o += '\\';
            o += c;
        } else if ((unsigned char)c < 0x20) {
            char b[8];
            snprintf(b, sizeof b, "\\u%04x", (unsigned)(unsigned char)c);
            o += b;
        } else {
            o += c;
        }
    }
    return o + "\"";
}

extern "C" int64_t padless_sim_report(char *buf, int64_t len) {
    using namespace ::padless::sim;
    std::string o = "{\"cycles\": " + std::to_string(me().clk);
    std::lock_guard<std::mutex> g(state.mu);
    o += ", \"deadlock\": " + padless_json_str(state.deadlock);
    o += ", \"thread_blocks\": " + std::to_string(sched.nblocks);
    o += ", \"port_violations\": " + std::to_string(state.port_violations) + ", \"violations\": [";
    for (size_t i = 0; i < state.first_violations.size(); i++) {
        const violation &v = state.first_violations[i];
        o += (i ? ", " : "") + std::string("{\"array\": ") + padless_json_str(v.array) + ", \"loop\": " +
             padless_json_str(v.loop) + ", \"bank\": " + std::to_string(v.bank) + ", \"accesses\": " +
             std::to_string(v.count) + ", \"ports\": " + std::to_string(v.ports) + "}";
    }
    o += "], \"procs\": [";
    for (size_t i = 0; i < state.procs.size(); i++) {
        const proc_stats &p = *state.procs[i];
        o += (i ? ", " : "") + std::string("{\"name\": ") + padless_json_str(p.name) + ", \"busy\": " +
             std::to_string(p.busy) + ", \"stall_in\": " + std::to_string(p.stall_in) + ", \"stall_out\": " +
             std::to_string(p.stall_out) + ", \"first\": " + std::to_string(p.first) + ", \"last\": " +
             std::to_string(p.last) + ", \"runs\": " + std::to_string(p.runs) + "}";
    }
    o += "], \"ideal_memory\": " + std::to_string(ideal_memory) + ", \"maxi\": [";
    {
        std::lock_guard<std::mutex> gm(maxi_ports.mu);
        bool first = true;
        for (auto &mp : maxi_ports.ports) {
            const maxi_stats &m = mp->st;
            if (!m.beats) continue;
            o += (first ? "" : ", ") + std::string("{\"port\": ") + padless_json_str(m.name) + ", \"beats\": " +
                 std::to_string(m.beats) + ", \"requests\": " + std::to_string(m.requests) + ", \"single\": " +
                 std::to_string(m.single) + ", \"stall\": " + std::to_string(m.stall) + "}";
            first = false;
        }
    }
    o += "]}";
    if ((int64_t)o.size() < len) memcpy(buf, o.c_str(), o.size() + 1);
    return (int64_t)o.size() + 1;
}

extern "C" int64_t padless_sim_jobs(int64_t *rows, int64_t max_rows) {
    using namespace ::padless::sim;
    std::lock_guard<std::mutex> g(state.mu);
    int64_t n = 0;
    for (size_t i = 0; i < state.procs.size(); i++)
        for (const job_rec &j : state.procs[i]->jobs) {
            if (n < max_rows) {
                int64_t *r = rows + 5 * n;
                r[0] = (int64_t)i;
                r[1] = j.seq;
                r[2] = j.layer;
                r[3] = j.start;
                r[4] = j.end;
            }
            n++;
        }
    return n;
}

#endif  // PADLESS_CSIM_API_H
