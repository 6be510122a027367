// padless C-simulation runtime: the g++ side of sim.h (never seen by Vitis HLS).
//
// One run = one call of the kernel. Processes of a dataflow region run as threads (or one after another
// in sequential mode); channels are bounded FIFOs (fifo<T>) and ping-pong blocks (blocks<T>) of the
// depths the code declares. With cfg.timed every process keeps a clock in kernel cycles (docs/hls.md,
// "Timed C-simulation"): a pipelined loop (class loop) issues iteration i at
//     issue(i) = issue(i - 1) + II + stalls,
// a read waits until the token's time, a write leaves at issue + depth and waits while the FIFO is full
// (until the consumer read the token `depth` places earlier), and the loop ends at issue(last) + depth.
// With cfg.ports every access of a ram1d / ram2d / blockram is counted per bank within the current
// pipelined iteration; more distinct addresses of one bank than its ports is a port violation.
// With cfg.threaded a run where every live process waits on a channel that cannot make progress is a
// deadlock: the run is aborted and the kernel returns PADLESS_ERR_DEADLOCK (the report names the
// processes and channels).
#ifndef PADLESS_SIM_RT_H
#define PADLESS_SIM_RT_H

#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ucontext.h>

namespace padless {
namespace sim {

// ------------------------------------------------------------------------------------------------
// Configuration of a run (set from the host through padless_sim_configure, see the top-level kernel).
struct config_t {
    int threaded = 1;    // one thread per process (0: sequential, Vitis csim_design semantics)
    int timed = 0;       // per-process clocks
    int ports = 0;       // port checker
    int exact_depth = 0; // FIFOs hold exactly their declared depth (timed runs and the deadlock check always do);
                         // untimed threaded runs otherwise grow them on demand (the same bits, fewer switches)
    int min_depth = 256; // (unused; kept for the API)
    int record_jobs = 0; // keep per-(process, sequence, layer) intervals (Gantt charts)
    int compute = 1;     // 0: timing only -- the fast form skips its arithmetic (outputs are not meaningful);
                         // the engine's cycles do not depend on values (tests/test_timed_csim.py)
};
static config_t cfg;

struct aborted {};  // thrown inside process threads when a run is aborted

// ------------------------------------------------------------------------------------------------
// Statistics of a run.
struct job_rec {
    int32_t seq, layer;
    int64_t start, end;
};
struct proc_stats {
    std::string name;
    int64_t busy = 0, stall_in = 0, stall_out = 0, first = -1, last = 0, runs = 0;
    std::vector<job_rec> jobs;
};
struct violation {
    std::string array, loop;
    int64_t bank, count, ports;
};
struct run_state {
    std::mutex mu;
    std::vector<std::unique_ptr<proc_stats>> procs;
    int64_t port_violations = 0;
    std::vector<violation> first_violations;
    std::string deadlock;  // empty: no deadlock
    int32_t layer = 0;
    proc_stats *find(const char *name) {
        std::lock_guard<std::mutex> g(mu);
        for (auto &p : procs)
            if (p->name == name) return p.get();
        procs.emplace_back(new proc_stats());
        procs.back()->name = name;
        return procs.back().get();
    }
    void reset() {
        std::lock_guard<std::mutex> g(mu);
        procs.clear();
        port_violations = 0;
        first_violations.clear();
        deadlock.clear();
        layer = 0;
    }
};
static run_state state;

// ------------------------------------------------------------------------------------------------
// Per-thread process context.
struct loop;
struct proc {
    proc_stats *st = nullptr;
    int64_t clk = 0;
    loop *cur = nullptr;
    uint64_t stamp = 0;      // current pipelined-iteration stamp (0: not in a pipelined iteration)
    int64_t job_start = 0;
};
static thread_local proc *tl_proc = nullptr;
static std::atomic<uint64_t> g_stamp_base{1};
static thread_local uint64_t tl_stamp_next = 0, tl_stamp_end = 0;

inline proc &me() {
    static thread_local proc root;
    if (!tl_proc) {
        root.st = state.find("top");
        tl_proc = &root;
    }
    return *tl_proc;
}

inline uint64_t new_stamp() {
    if (tl_stamp_next == tl_stamp_end) {
        tl_stamp_next = g_stamp_base.fetch_add(1 << 20);
        tl_stamp_end = tl_stamp_next + (1 << 20);
    }
    return tl_stamp_next++;
}

// A pipelined loop at II `ii` and depth `depth` (cycles from issue to the last stage).
struct loop {
    const char *name;
    int64_t ii, depth, start, issue, last_i, stalls;
    loop *outer;
    proc *p;
    loop(const char *n, int64_t ii_, int64_t depth_) : name(n), ii(ii_), depth(depth_), last_i(-1), stalls(0) {
        p = &me();
        start = p->clk;
        issue = start - ii;
        outer = p->cur;
        p->cur = this;
    }
    // Iteration i (i increases; skipped iterations had no channel access).
    inline void at(int64_t i) {
        issue += (i - last_i) * ii;
        last_i = i;
        if (cfg.ports) p->stamp = new_stamp();
    }
    inline void end(int64_t trip) {
        if (trip > 0) {
            int64_t last = issue + (trip - 1 - last_i) * ii;
            p->clk = last + depth;
        } else {
            p->clk = start;
        }
        if (p->st) p->st->busy += (p->clk - start) - stalls;
        p->cur = outer;
        p->stamp = 0;
    }
};

inline int64_t now() {
    proc &p = me();
    return p.cur ? p.cur->issue : p.clk;
}
// The process waits until time t (a stall): the current iteration and every later one shift.
inline void stall_to(int64_t t, bool input) {
    proc &p = me();
    int64_t n = p.cur ? p.cur->issue : p.clk;
    if (t <= n) return;
    int64_t d = t - n;
    if (p.cur) {
        p.cur->issue += d;
        p.cur->stalls += d;
    } else {
        p.clk += d;
    }
    if (p.st) (input ? p.st->stall_in : p.st->stall_out) += d;
}
// Time at which a value written now leaves the process (the end of the current pipeline).
inline int64_t out_time() {
    proc &p = me();
    return p.cur ? p.cur->issue + p.cur->depth : p.clk;
}
inline void cycles(int64_t n) {
    proc &p = me();
    if (p.cur) {
        p.cur->issue += n;
    } else {
        p.clk += n;
        if (p.st) p.st->busy += n;
    }
}
inline void job_begin(int32_t seq, int32_t layer) {
    (void)seq;
    (void)layer;
    if (cfg.timed) me().job_start = now();
}
inline void job_end(int32_t seq, int32_t layer) {
    if (!cfg.timed || !cfg.record_jobs) return;
    proc &p = me();
    if (p.st) p.st->jobs.push_back({seq, layer, p.job_start, p.clk});
}

// ------------------------------------------------------------------------------------------------
// Blocking, deadlock detection, abort.
struct waiter {
    std::string proc, chan;
    bool write;
    std::function<bool()> ready;
};
struct sched_t {
    std::mutex mu;
    std::atomic<int> live{0};
    int blocked = 0;
    int64_t nblocks = 0;
    std::atomic<bool> abort{false};
    std::vector<waiter *> waiters;
    std::vector<std::condition_variable *> cvs;  // every channel's cv (to wake all on abort)
};
static sched_t sched;

// ------------------------------------------------------------------------------------------------
// Cooperative mode (timed runs and the deadlock check): every process is a coroutine on the calling
// thread; a process that must wait on a channel yields to a round-robin scheduler. Switches cost a few
// hundred nanoseconds instead of a kernel wake-up, and a run is deterministic. Untimed runs use threads
// (two cores, producers never wait).
struct chan_base;
class region;
struct coro {
    ucontext_t ctx;
    std::unique_ptr<char[]> stack;
    std::function<void()> fn;
    proc p;
    bool done = false;
    int64_t t0 = 0;
    const char *name = "";
    chan_base *blocked_on = nullptr;
    bool blocked_write = false;
    region *owner = nullptr;   // the region this coroutine is a process of
    region *joining = nullptr; // the nested region this coroutine waits on
};
struct coro_rt {
    bool active = false;
    ucontext_t main_ctx;
    coro *current = nullptr;
    std::deque<coro *> ready;
    std::vector<coro *> all;
    bool abort = false;
};
static coro_rt co;
static const size_t CORO_STACK = 1 << 20;

inline void co_switch_out() {  // from a coroutine back to the scheduler
    coro *c = co.current;
    swapcontext(&c->ctx, &co.main_ctx);
    tl_proc = &co.current->p;
}

struct chan_base {
    std::string name;
    std::condition_variable cv;
    std::atomic<int> waiting{0};
    explicit chan_base(const char *n) : name(n) {
        std::lock_guard<std::mutex> g(sched.mu);
        sched.cvs.push_back(&cv);
    }
    ~chan_base() {
        std::lock_guard<std::mutex> g(sched.mu);
        auto &v = sched.cvs;
        v.erase(std::remove(v.begin(), v.end(), &cv), v.end());
    }
    std::vector<coro *> co_waiters;
    void wake() {
        if (co.active) {
            for (coro *c : co_waiters) co.ready.push_back(c);
            co_waiters.clear();
            return;
        }
        if (waiting.load(std::memory_order_seq_cst) > 0) {
            std::lock_guard<std::mutex> g(sched.mu);
            cv.notify_all();
        }
    }
    template <typename P> void block_until(P ready, bool write) {
        if (co.active) {
            while (!ready()) {
                if (co.abort) throw aborted();
                coro *c = co.current;
                c->blocked_on = this;
                c->blocked_write = write;
                co_waiters.push_back(c);
                sched.nblocks++;
                co_switch_out();
                c->blocked_on = nullptr;
            }
            if (co.abort) throw aborted();
            return;
        }
        for (int i = 0; i < 256; i++) {  // a short spin (no system call) before sleeping
            if (ready()) return;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        if (sched.abort.load()) throw aborted();
        std::unique_lock<std::mutex> lk(sched.mu);
        waiting.fetch_add(1, std::memory_order_seq_cst);
        proc &p = me();
        waiter w{p.st ? p.st->name : std::string("?"), name, write, ready};
        sched.waiters.push_back(&w);
        sched.blocked++;
        sched.nblocks++;
        while (!ready() && !sched.abort.load()) {
            if (cfg.threaded && sched.blocked >= sched.live.load()) check_deadlock_locked();
            if (sched.abort.load()) break;
            cv.wait(lk);
        }
        sched.blocked--;
        auto &v = sched.waiters;
        v.erase(std::remove(v.begin(), v.end(), &w), v.end());
        waiting.fetch_sub(1, std::memory_order_seq_cst);
        if (!ready() && sched.abort.load()) throw aborted();
    }
    static void check_deadlock_locked() {
        for (waiter *w : sched.waiters)
            if (w->ready()) return;
        std::string msg = "deadlock: every live process waits on a channel:";
        for (waiter *w : sched.waiters)
            msg += " [" + w->proc + (w->write ? " writing " : " reading ") + w->chan + "]";
        {
            std::lock_guard<std::mutex> g(state.mu);
            if (state.deadlock.empty()) state.deadlock = msg;
        }
        abort_all_locked();
    }
    static void abort_all_locked() {
        sched.abort.store(true);
        for (auto *c : sched.cvs) c->notify_all();
    }
};

inline void abort_run() {
    std::lock_guard<std::mutex> g(sched.mu);
    chan_base::abort_all_locked();
}

// ------------------------------------------------------------------------------------------------
// hls::stream<T, DEPTH> stand-in: one producer, one consumer.
template <typename T> class fifo : public chan_base {
  public:
    fifo(const char *n, int64_t depth) : chan_base(n), depth_(depth) {
        if (!cfg.threaded) {
            mode_ = SEQ;  // unbounded deque, one thread
        } else if (!cfg.timed && !cfg.exact_depth) {
            mode_ = UNBOUNDED;  // untimed: a producer never waits (the same bits, fewer thread switches)
        } else {
            mode_ = BOUNDED;
            cap_ = (size_t)depth;
            buf_.resize(cap_);
            if (cfg.timed) {
                wt_.assign(cap_, 0);
                rt_.assign(cap_, 0);
            }
        }
    }
    void write(const T &v) {
        if (mode_ == SEQ) {
            q_.push_back(v);
            return;
        }
        uint64_t n = tail_.load(std::memory_order_relaxed);
        if (mode_ == UNBOUNDED) {
            chunk_for_write(n)[n % CHUNK] = v;
            tail_.store(n + 1, std::memory_order_seq_cst);
            wake();
            return;
        }
        if (n - head_.load(std::memory_order_acquire) >= cap_)
            block_until([this, n] { return n - head_.load(std::memory_order_seq_cst) < cap_; }, true);
        size_t s = n % cap_;
        if (cfg.timed) {
            int64_t t = out_time();
            if (n >= cap_) {
                int64_t tf = rt_[s] + 1;  // the slot frees the cycle after its token was read
                if (tf > t) {
                    stall_to(now() + (tf - t), false);
                    t = tf;
                }
            }
            wt_[s] = t;
        }
        buf_[s] = v;
        tail_.store(n + 1, std::memory_order_seq_cst);
        wake();
    }
    T read() {
        if (mode_ == SEQ) {
            if (q_.empty()) throw std::runtime_error("csim: read from empty FIFO " + name + " (sequential run)");
            T v = q_.front();
            q_.pop_front();
            return v;
        }
        uint64_t n = head_.load(std::memory_order_relaxed);
        if (tail_.load(std::memory_order_acquire) <= n)
            block_until([this, n] { return tail_.load(std::memory_order_seq_cst) > n; }, false);
        if (mode_ == UNBOUNDED) {
            T v = chunk_for_read(n)[n % CHUNK];
            head_.store(n + 1, std::memory_order_seq_cst);
            return v;
        }
        size_t s = n % cap_;
        T v = buf_[s];
        if (cfg.timed) {
            stall_to(wt_[s] + 1, true);  // a token is readable the cycle after it was written
            rt_[s] = now();
        }
        head_.store(n + 1, std::memory_order_seq_cst);
        wake();
        return v;
    }
    int64_t depth() const { return depth_; }

  private:
    enum { SEQ, UNBOUNDED, BOUNDED };
    static const uint64_t CHUNK = 1024;
    // unbounded mode: fixed chunks, allocated by the producer and freed by the consumer
    T *chunk_for_write(uint64_t n) {
        uint64_t c = n / CHUNK;
        std::lock_guard<std::mutex> g(cmu_);
        while (chunks_base_ + chunks_.size() <= c) chunks_.emplace_back(new T[CHUNK]);
        return chunks_[c - chunks_base_].get();
    }
    T *chunk_for_read(uint64_t n) {
        uint64_t c = n / CHUNK;
        std::lock_guard<std::mutex> g(cmu_);
        while (chunks_base_ < c) {  // every token of the oldest chunk has been read
            chunks_.pop_front();
            chunks_base_++;
        }
        return chunks_[c - chunks_base_].get();
    }
    int mode_ = BOUNDED;
    int64_t depth_;
    size_t cap_ = 0;
    std::vector<T> buf_;
    std::vector<int64_t> wt_, rt_;
    std::deque<T> q_;
    std::deque<std::unique_ptr<T[]>> chunks_;
    uint64_t chunks_base_ = 0;
    std::mutex cmu_;
    std::atomic<uint64_t> head_{0}, tail_{0};
};

// ------------------------------------------------------------------------------------------------
// hls::stream_of_blocks<T, DEPTH> stand-in: DEPTH buffers handed from one producer to one consumer.
template <typename T> class blocks : public chan_base {
  public:
    blocks(const char *n, int64_t depth) : chan_base(n), depth_(depth) {
        cap_ = (size_t)(cfg.threaded ? depth : 0);
        for (size_t i = 0; i < cap_; i++) bufs_.emplace_back(new T());
        rel_w_.assign(cap_ ? cap_ : 1, 0);
        rel_r_.assign(cap_ ? cap_ : 1, 0);
    }
    // producer side
    T *acquire_write() {
        if (!cap_) {
            seq_q_.emplace_back(new T());
            return seq_q_.back().get();
        }
        uint64_t n = wacq_;
        if (n - rrel_.load(std::memory_order_acquire) >= cap_)
            block_until([this, n] { return n - rrel_.load(std::memory_order_seq_cst) < cap_; }, true);
        size_t s = n % cap_;
        if (cfg.timed && n >= cap_) stall_to(rel_r_[s] + 1, false);
        return bufs_[s].get();
    }
    void release_write() {
        if (!cap_) return;
        size_t s = wacq_ % cap_;
        if (cfg.timed) rel_w_[s] = now();
        wacq_++;
        wrel_.store(wacq_, std::memory_order_seq_cst);
        wake();
    }
    // consumer side
    T *acquire_read() {
        if (!cap_) {
            if (seq_q_.empty()) throw std::runtime_error("csim: read lock on empty stream of blocks " + name);
            cur_.reset(seq_q_.front().release());
            seq_q_.pop_front();
            return cur_.get();
        }
        uint64_t n = racq_;
        if (wrel_.load(std::memory_order_acquire) <= n)
            block_until([this, n] { return wrel_.load(std::memory_order_seq_cst) > n; }, false);
        size_t s = n % cap_;
        if (cfg.timed) stall_to(rel_w_[s] + 1, true);
        return bufs_[s].get();
    }
    void release_read() {
        if (!cap_) {
            cur_.reset();
            return;
        }
        size_t s = racq_ % cap_;
        if (cfg.timed) rel_r_[s] = now();
        racq_++;
        rrel_.store(racq_, std::memory_order_seq_cst);
        wake();
    }
    int64_t depth() const { return depth_; }

  private:
    int64_t depth_;
    size_t cap_;
    std::vector<std::unique_ptr<T>> bufs_;
    std::vector<int64_t> rel_w_, rel_r_;
    std::deque<std::unique_ptr<T>> seq_q_;
    std::unique_ptr<T> cur_;
    uint64_t wacq_ = 0, racq_ = 0;
    std::atomic<uint64_t> wrel_{0}, rrel_{0};
};
// A process's reference to a block channel: hls::stream_of_blocks<T, DEPTH>& under Vitis HLS, where DEPTH
// is part of the type; the C-simulation channel holds its depth at run time.
template <typename T, unsigned DEPTH = 2> using blocks_ref = blocks<T>;

template <typename T> class write_lock {
  public:
    explicit write_lock(blocks<T> &c) : c_(c), b_(c.acquire_write()) {}
    ~write_lock() { c_.release_write(); }
    T &operator*() { return *b_; }
    T *operator->() { return b_; }
    auto operator[](int64_t i) -> decltype((*(T *)nullptr)[i]) { return (*b_)[i]; }

  private:
    blocks<T> &c_;
    T *b_;
};
template <typename T> class read_lock {
  public:
    explicit read_lock(blocks<T> &c) : c_(c), b_(c.acquire_read()) {}
    ~read_lock() { c_.release_read(); }
    T &operator*() { return *b_; }
    T *operator->() { return b_; }
    auto operator[](int64_t i) -> decltype((*(T *)nullptr)[i]) { return (*b_)[i]; }

  private:
    blocks<T> &c_;
    T *b_;
};

// ------------------------------------------------------------------------------------------------
// A dataflow region: processes run as threads (threaded) or in call order (sequential).
class region {
  public:
    explicit region(const char *n) : name_(n) {
        parent_ = &me();
        parent_coro_ = co.active ? co.current : nullptr;
    }
    template <typename F> void spawn(const char *pname, F fn) {
        proc_stats *st = state.find(pname);
        int64_t t0 = parent_->clk;
        if (!cfg.threaded) {
            proc p;
            p.st = st;
            p.clk = t0;
            proc *saved = tl_proc;
            tl_proc = &p;
            try {
                fn();
            } catch (...) {
                tl_proc = saved;
                throw;
            }
            tl_proc = saved;
            finish(st, p.clk, t0);
            return;
        }
        if (co.active) {
            coro *c = new coro();
            c->fn = fn;
            c->p.st = st;
            c->p.clk = t0;
            c->t0 = t0;
            c->name = pname;
            c->owner = this;
            c->stack.reset(new char[CORO_STACK]);
            getcontext(&c->ctx);
            c->ctx.uc_stack.ss_sp = c->stack.get();
            c->ctx.uc_stack.ss_size = CORO_STACK;
            c->ctx.uc_link = &co.main_ctx;
            makecontext(&c->ctx, (void (*)())&region::trampoline, 0);
            co.all.push_back(c);
            co.ready.push_back(c);
            pending_++;
            return;
        }
        sched.live.fetch_add(1);
        threads_.emplace_back([this, st, t0, fn]() {
            proc p;
            p.st = st;
            p.clk = t0;
            tl_proc = &p;
            try {
                fn();
            } catch (const aborted &) {
            } catch (...) {
                std::lock_guard<std::mutex> g(err_mu_);
                if (!err_) err_ = std::current_exception();
                abort_run();
            }
            finish(st, p.clk, t0);
            {
                std::lock_guard<std::mutex> g(sched.mu);
                sched.live.fetch_sub(1);
                // A process that ends may leave the others unable to progress.
                if (sched.live.load() > 0 && sched.blocked >= sched.live.load()) chan_base::check_deadlock_locked();
            }
        });
    }
    void join() {
        if (co.active) {
            if (parent_coro_) {  // a nested region: wait as a coroutine
                while (pending_ > 0) {
                    parent_coro_->joining = this;
                    co_switch_out();
                }
                parent_coro_->joining = nullptr;
            } else {
                run_scheduler();
            }
            parent_->clk = std::max(parent_->clk, end_);
            if (err_) std::rethrow_exception(err_);
            if (co.abort) throw aborted();
            return;
        }
        if (!threads_.empty()) {
            // The parent waits on its children from here: it no longer counts as a live process.
            std::lock_guard<std::mutex> g(sched.mu);
            sched.live.fetch_sub(1);
            if (sched.blocked > 0 && sched.blocked >= sched.live.load()) chan_base::check_deadlock_locked();
        }
        for (auto &t : threads_) t.join();
        if (!threads_.empty()) sched.live.fetch_add(1);
        threads_.clear();
        parent_->clk = std::max(parent_->clk, end_);
        if (err_) std::rethrow_exception(err_);
        if (sched.abort.load()) throw aborted();
    }

  private:
    static void trampoline() {
        coro *c = co.current;
        tl_proc = &c->p;
        try {
            c->fn();
        } catch (const aborted &) {
        } catch (...) {
            if (!c->owner->err_) c->owner->err_ = std::current_exception();
            co.abort = true;
            for (coro *o : co.all)
                if (!o->done && o != c) co.ready.push_back(o);
        }
        c->owner->finish(c->p.st, c->p.clk, c->t0);
        c->done = true;
        region *r = c->owner;
        if (--r->pending_ == 0 && r->parent_coro_ && r->parent_coro_->joining == r) co.ready.push_back(r->parent_coro_);
        // returning switches to uc_link (the scheduler)
    }
    // The top-level scheduler: run ready coroutines until this region's processes are done.
    void run_scheduler() {
        proc *saved = tl_proc;
        while (pending_ > 0) {
            if (co.ready.empty()) {
                // every process that is not done waits: a deadlock (or the end of an abort)
                std::string msg = "deadlock: every live process waits on a channel:";
                int n = 0;
                for (coro *c : co.all)
                    if (!c->done && c->blocked_on) {
                        msg += std::string(" [") + c->name + (c->blocked_write ? " writing " : " reading ") + c->blocked_on->name + "]";
                        n++;
                    }
                if (!co.abort) {
                    std::lock_guard<std::mutex> g(state.mu);
                    if (state.deadlock.empty()) state.deadlock = n ? msg : "deadlock: processes wait on each other";
                }
                co.abort = true;
                for (coro *c : co.all)
                    if (!c->done) co.ready.push_back(c);
                if (co.ready.empty()) break;
            }
            coro *c = co.ready.front();
            co.ready.pop_front();
            if (c->done) continue;
            co.current = c;
            tl_proc = &c->p;
            swapcontext(&co.main_ctx, &c->ctx);
            co.current = nullptr;
            tl_proc = saved;
        }
        for (coro *c : co.all) delete c;
        co.all.clear();
        co.ready.clear();
    }
    void finish(proc_stats *st, int64_t clk, int64_t t0) {
        std::lock_guard<std::mutex> g(state.mu);
        st->runs++;
        if (st->first < 0 || t0 < st->first) st->first = t0;
        st->last = std::max(st->last, clk);
        end_ = std::max(end_, clk);
    }
    const char *name_;
    proc *parent_;
    coro *parent_coro_ = nullptr;
    int pending_ = 0;
    std::vector<std::thread> threads_;
    int64_t end_ = 0;
    std::mutex err_mu_;
    std::exception_ptr err_;
};

// ------------------------------------------------------------------------------------------------
// On-chip arrays with their partitioning (the port checker's view of the memories).
enum part_kind { part_cyclic = 0, part_block = 1, part_complete = 2 };

struct port_tracker {
    const char *name;
    int64_t banks, ports;
    bool regs;  // complete partition: registers (reads free, one write per element and cycle)
    struct bank_state {
        uint64_t stamp = 0;
        int n = 0, writes = 0;
        int64_t addr[4];
    };
    std::vector<bank_state> st;
    std::mutex mu;  // the stamp check is per thread; blocks are handed between threads
    port_tracker(const char *n, int64_t b, int64_t p, bool r) : name(n), banks(b), ports(p), regs(r) {}
    void record(int64_t bank, int64_t addr, bool write) {
        proc &pr = me();
        if (!pr.stamp) return;  // not inside a pipelined iteration
        if (st.empty()) st.resize((size_t)banks);
        bank_state &b = st[(size_t)bank];
        if (b.stamp != pr.stamp) {
            b.stamp = pr.stamp;
            b.n = 0;
            b.writes = 0;
        }
        // one violation per (iteration, bank): the iteration cannot issue at II = 1
        if (regs) {
            if (write && ++b.writes == 2) fail(bank, b.writes, 1, pr);
            return;
        }
        for (int i = 0; i < b.n; i++)
            if (b.addr[i] == addr) return;
        if (b.n < 4) b.addr[b.n] = addr;
        b.n++;
        if (b.n == ports + 1) fail(bank, b.n, ports, pr);
    }
    void fail(int64_t bank, int64_t count, int64_t p, proc &pr) {
        std::lock_guard<std::mutex> g(state.mu);
        state.port_violations++;
        if (state.first_violations.size() < 16)
            state.first_violations.push_back({name, pr.cur ? pr.cur->name : "?", bank, count, p});
    }
};

// T name[N] partitioned `kind` with `factor` banks (complete: N registers).
template <typename T, int64_t N> class ram1d {
  public:
    ram1d(const char *n, part_kind k, int64_t factor, const char *impl)
        : kind_(k), factor_(k == part_complete ? N : std::max<int64_t>(1, factor)),
          trk_(n, k == part_complete ? N : std::max<int64_t>(1, factor), 2, k == part_complete) {
        (void)impl;
        data_.reset(new T[N]());
    }
    struct ref {
        ram1d *a;
        int64_t i;
        operator T() const {
            a->rec(i, false);
            return a->data_[i];
        }
        ref &operator=(const T &v) {
            a->rec(i, true);
            a->data_[i] = v;
            return *this;
        }
        ref &operator=(const ref &o) { return *this = (T)o; }
    };
    inline ref operator[](int64_t i) { return ref{this, i}; }
    inline T *data() { return data_.get(); }
    inline void rec(int64_t i, bool w) {
        if (!cfg.ports) return;
        if (i < 0 || i >= N) throw std::out_of_range(std::string("csim: ") + trk_.name + " index out of range");
        int64_t bank = kind_ == part_block ? i / ((N + factor_ - 1) / factor_) : i % factor_;
        int64_t addr = kind_ == part_block ? i % ((N + factor_ - 1) / factor_) : i / factor_;
        trk_.record(bank, addr, w);
    }

  private:
    part_kind kind_;
    int64_t factor_;
    port_tracker trk_;
    std::unique_ptr<T[]> data_;
};

// T name[N] completely partitioned into registers (PADLESS_REGS): a port per element, so no access pattern
// can exceed its ports and the checker has nothing to count; held inline (no allocation: folds declare
// these per iteration). Decays to T* as the array does under Vitis.
template <typename T, int64_t N> struct regs {
    T d[N];
    inline T &operator[](int64_t i) { return d[i]; }
    inline const T &operator[](int64_t i) const { return d[i]; }
    inline operator T *() { return d; }
    inline operator const T *() const { return d; }
};

// T name[BANKS][N]: dim 1 completely partitioned (BANKS memories of N words each).
template <typename T, int64_t BANKS, int64_t N> class ram2d {
  public:
    ram2d(const char *n, const char *impl, int ports = 2) : trk_(n, BANKS, ports, false) {
        (void)impl;
        data_.reset(new T[BANKS * N]());
    }
    struct ref {
        ram2d *a;
        int64_t b, i;
        operator T() const {
            a->rec(b, i, false);
            return a->data_[b * N + i];
        }
        ref &operator=(const T &v) {
            a->rec(b, i, true);
            a->data_[b * N + i] = v;
            return *this;
        }
        ref &operator=(const ref &o) { return *this = (T)o; }
    };
    struct bank_ref {
        ram2d *a;
        int64_t b;
        inline ref operator[](int64_t i) const { return ref{a, b, i}; }
    };
    inline bank_ref operator[](int64_t b) { return bank_ref{this, b}; }
    inline T *data(int64_t b = 0, int64_t i = 0) { return data_.get() + b * N + i; }
    inline void rec(int64_t b, int64_t i, bool w) {
        if (!cfg.ports) return;
        if (b < 0 || b >= BANKS || i < 0 || i >= N)
            throw std::out_of_range(std::string("csim: ") + trk_.name + " index out of range");
        trk_.record(b, i, w);
    }

  private:
    port_tracker trk_;
    std::unique_ptr<T[]> data_;
};

// A block of a stream of blocks: T [ROWS][COLS], dim 2 partitioned cyclic FACTOR (FACTOR == COLS:
// complete). Row r, column c lives in bank c % FACTOR at address r * (COLS / FACTOR) + c / FACTOR.
template <typename T, int64_t ROWS, int64_t COLS, int64_t FACTOR> class blockram {
  public:
    blockram() : trk_("block", FACTOR, 2, false) { data_.reset(new T[ROWS * COLS]()); }
    struct ref {
        blockram *a;
        int64_t r, c;
        operator T() const {
            a->rec(r, c, false);
            return a->data_[r * COLS + c];
        }
        ref &operator=(const T &v) {
            a->rec(r, c, true);
            a->data_[r * COLS + c] = v;
            return *this;
        }
        ref &operator=(const ref &o) { return *this = (T)o; }
    };
    struct row_ref {
        blockram *a;
        int64_t r;
        inline ref operator[](int64_t c) const { return ref{a, r, c}; }
    };
    inline row_ref operator[](int64_t r) { return row_ref{this, r}; }
    inline T *row(int64_t r) { return data_.get() + r * COLS; }
    void set_name(const char *n) { trk_.name = n; }
    inline void rec(int64_t r, int64_t c, bool w) {
        if (!cfg.ports) return;
        if (r < 0 || r >= ROWS || c < 0 || c >= COLS)
            throw std::out_of_range(std::string("csim: block ") + trk_.name + " index out of range");
        trk_.record(c % FACTOR, r * (COLS / FACTOR) + c / FACTOR, w);
    }

  private:
    port_tracker trk_;
    std::unique_ptr<T[]> data_;
};

// A block T [BANKS][ROWS][COLS]: dim 1 completely partitioned (BANKS memories), dim 3 reshaped into
// one word (a row of COLS elements is one access): bank b, address r.
template <typename T, int64_t BANKS, int64_t ROWS, int64_t COLS> class blockram3 {
  public:
    blockram3() : trk_("block", BANKS, 2, false) { data_.reset(new T[BANKS * ROWS * COLS]()); }
    struct ref {
        blockram3 *a;
        int64_t b, r, c;
        operator T() const {
            a->rec(b, r, c, false);
            return a->data_[(b * ROWS + r) * COLS + c];
        }
        ref &operator=(const T &v) {
            a->rec(b, r, c, true);
            a->data_[(b * ROWS + r) * COLS + c] = v;
            return *this;
        }
        ref &operator=(const ref &o) { return *this = (T)o; }
    };
    struct row_ref {
        blockram3 *a;
        int64_t b, r;
        inline ref operator[](int64_t c) const { return ref{a, b, r, c}; }
    };
    struct bank_ref {
        blockram3 *a;
        int64_t b;
        inline row_ref operator[](int64_t r) const { return row_ref{a, b, r}; }
    };
    inline bank_ref operator[](int64_t b) { return bank_ref{this, b}; }
    inline T *row(int64_t b, int64_t r) { return data_.get() + (b * ROWS + r) * COLS; }
    inline void rec(int64_t b, int64_t r, int64_t c, bool w) {
        if (!cfg.ports) return;
        if (b < 0 || b >= BANKS || r < 0 || r >= ROWS || c < 0 || c >= COLS)
            throw std::out_of_range(std::string("csim: block ") + trk_.name + " index out of range");
        trk_.record(b, r, w);
    }

  private:
    port_tracker trk_;
    std::unique_ptr<T[]> data_;
};

// ------------------------------------------------------------------------------------------------
// m_axi memory model (docs/hls.md, "m_axi"; docs/performance-model.md, "Memory"). Timed runs only; with
// cfg.ideal_memory (or untimed) every beat is there when the loop asks for it (the upper bound).
//
// A port (one m_axi bundle) has a request latency L (cycles: read request to first beat, write last beat
// to response), at most O requests in flight, requests of at most BL beats (max_*_burst_length) and
// `cpb` cycles per beat (>= 1: its port width over its share of the bank bandwidth; ports that share a
// bank split it evenly, the "fair share"). A loop whose address is base + i declares the burst Vitis
// infers for it (maxi_port::burst(base, n)) before it starts; then
//   request r (beats [r BL, (r + 1) BL) of the burst) issues at
//       iss_r = max(t0 + r, iss_{r-1} + 1, free(r - O))
//   (t0 = the loop's start; free(k) = the cycle after the kernel took request k's last beat: the adapter
//   only asks for a burst its read buffer can hold, UG1399 "m_axi Interfaces"), and beat b arrives at
//       arr_b = max(iss_r + L (first beat of r), arr_{b-1} + cpb);
//   the iteration that reads beat b stalls until ceil(arr_b).
// A read outside a declared burst is a single-beat request: it issues at the iteration (stalling while O
// requests are in flight, a slot frees when its data arrives) and the loop's pipeline is L deeper.
// Writes: beat b is accepted at max(issue, acc_{b-1} + cpb, resp(r - O)) for the first beat of request r;
// request r's response comes L after its last beat; wait() (the end of a burst loop) waits for every
// response.
struct maxi_params {
    int64_t latency = 0;      // cycles
    int64_t outstanding = 0;  // requests in flight (0: unlimited)
    int64_t burst = 1;        // beats a request
    double cpb = 1.0;         // cycles a beat
};
struct maxi_stats {
    std::string name;
    int64_t beats = 0, requests = 0, single = 0, stall = 0;
};
struct maxi_state {
    maxi_params prm;
    maxi_stats st;
    // the declared burst
    int64_t base = 0, n = 0, next = 0, t0 = 0, k0 = 0;
    bool in_burst = false;
    double last = -1e18, last_issue = -1e18, resp_max = 0;
    int64_t nreq = 0;
    std::vector<double> slot;   // per outstanding slot: the cycle it frees
    const loop *deepened = nullptr;
    int64_t deepened_start = -1;
    void reset() {
        base = n = next = t0 = k0 = nreq = 0;
        in_burst = false;
        last = last_issue = -1e18;
        resp_max = 0;
        slot.clear();
        deepened = nullptr;
        deepened_start = -1;
        st = maxi_stats{st.name};
    }
};
struct maxi_registry {
    std::mutex mu;
    std::vector<std::unique_ptr<maxi_state>> ports;
    maxi_state *get(const char *name) {
        std::lock_guard<std::mutex> g(mu);
        for (auto &p : ports)
            if (p->st.name == name) return p.get();
        ports.emplace_back(new maxi_state());
        ports.back()->st.name = name;
        return ports.back().get();
    }
    void reset() {
        std::lock_guard<std::mutex> g(mu);
        for (auto &p : ports) p->reset();
    }
};
static maxi_registry maxi_ports;
static int ideal_memory = 0;  // padless_sim_memory(1): every m_axi beat is there when asked (upper bound)

inline bool maxi_modeled() { return cfg.timed && !ideal_memory; }

inline double slot_free(maxi_state &s, int64_t k) {
    if (s.prm.outstanding <= 0) return -1e18;
    if (s.slot.size() != (size_t)s.prm.outstanding) s.slot.assign((size_t)s.prm.outstanding, -1e18);
    return s.slot[(size_t)(k % s.prm.outstanding)];
}
inline void set_slot(maxi_state &s, int64_t k, double t) {
    if (s.prm.outstanding <= 0) return;
    slot_free(s, k);
    s.slot[(size_t)(k % s.prm.outstanding)] = t;
}
inline void maxi_stall(maxi_state &s, double t) {
    const int64_t c = (int64_t)std::ceil(t - 1e-9);
    const int64_t n0 = now();
    if (c > n0) {
        s.st.stall += c - n0;
        stall_to(c, true);
    }
}

// The timing of one m_axi access of beat `addr` at the current iteration (read or write).
inline void maxi_read_time(maxi_state &s, int64_t addr) {
    s.st.beats++;
    const maxi_params &P = s.prm;
    if (s.in_burst && addr == s.base + s.next && s.next < s.n) {
        const int64_t b = s.next++;
        const int64_t BL = P.burst > 0 ? P.burst : 1;
        const int64_t r = b / BL;
        double arr;
        if (b % BL == 0) {
            const int64_t k = s.k0 + r;
            s.nreq = std::max(s.nreq, k + 1);
            s.st.requests++;
            double iss = std::max({(double)(s.t0 + r), s.last_issue + 1, slot_free(s, k)});
            s.last_issue = iss;
            arr = std::max(iss + (double)P.latency, s.last + P.cpb);
        } else {
            arr = s.last + P.cpb;
        }
        s.last = arr;
        maxi_stall(s, arr);
        if (b % BL == BL - 1 || b == s.n - 1) set_slot(s, s.k0 + r, (double)now() + 1);
        return;
    }
    // a single-beat request: issued by the iteration, its data L cycles down the pipeline
    s.in_burst = false;
    s.st.requests++;
    s.st.single++;
    const int64_t k = s.nreq++;
    double iss = std::max({(double)now(), s.last_issue + 1, slot_free(s, k)});
    double arr = std::max(iss + (double)P.latency, s.last + P.cpb);
    iss = std::max(iss, arr - (double)P.latency);  // bandwidth-bound: the pipeline stalls
    maxi_stall(s, iss);
    s.last_issue = iss;
    s.last = arr;
    set_slot(s, k, arr);
    proc &p = me();
    if (p.cur && (s.deepened != p.cur || s.deepened_start != p.cur->start)) {
        p.cur->depth += P.latency;
        s.deepened = p.cur;
        s.deepened_start = p.cur->start;
    }
}
inline void maxi_write_time(maxi_state &s, int64_t addr) {
    s.st.beats++;
    const maxi_params &P = s.prm;
    const int64_t BL = P.burst > 0 ? P.burst : 1;
    const bool seq = s.in_burst && addr == s.base + s.next && s.next < s.n;
    if (!seq) {
        s.in_burst = true;  // a single-beat request: a burst of one
        s.base = addr;
        s.n = 1;
        s.next = 0;
        s.k0 = s.nreq;
        s.st.single++;
    }
    const int64_t b = s.next++;
    const int64_t r = b / BL, k = s.k0 + r;
    double acc = std::max((double)now(), s.last + P.cpb);
    if (b % BL == 0) {
        s.nreq = std::max(s.nreq, k + 1);
        s.st.requests++;
        acc = std::max(acc, slot_free(s, k));
    }
    maxi_stall(s, acc);
    s.last = acc;
    if (b % BL == BL - 1 || b == s.n - 1) {
        const double resp = std::ceil(acc - 1e-9) + (double)P.latency;
        set_slot(s, k, resp);
        s.resp_max = std::max(s.resp_max, resp);
    }
}

// An m_axi port as the kernel's code sees it: a pointer with the memory model beside it.
template <typename T> class maxi_port {
  public:
    maxi_port(T *ptr, const char *name, const maxi_params &prm) : p_(ptr), s_(maxi_ports.get(name)) {
        s_->prm = prm;
        if (!(s_->prm.cpb >= 1.0)) s_->prm.cpb = 1.0;
        if (ideal_memory) {
            s_->prm.latency = 0;
            s_->prm.outstanding = 0;
            s_->prm.cpb = 1.0;
        }
    }
    // The burst Vitis infers for the loop that follows (address base + i, i < n): declared at its start.
    void burst(int64_t base, int64_t n) {
        if (!maxi_modeled()) return;
        maxi_state &s = *s_;
        s.in_burst = true;
        s.base = base;
        s.n = n;
        s.next = 0;
        proc &p = me();  // the requests go out when the loop starts (declared just before or after its header)
        s.t0 = p.cur ? std::max(p.cur->issue, p.cur->start) : p.clk;
        s.k0 = s.nreq;
        s.nreq += (n + std::max<int64_t>(1, s.prm.burst) - 1) / std::max<int64_t>(1, s.prm.burst);
    }
    // The end of a write burst loop: every write response is in (Vitis waits for them at the loop exit).
    void wait() {
        if (!maxi_modeled()) return;
        maxi_stall(*s_, s_->resp_max);
    }
    struct ref {
        maxi_port *m;
        int64_t i;
        operator T() const {
            if (maxi_modeled()) maxi_read_time(*m->s_, i);
            return m->p_[i];
        }
        ref &operator=(const T &v) {
            if (maxi_modeled()) maxi_write_time(*m->s_, i);
            m->p_[i] = v;
            return *this;
        }
    };
    inline ref operator[](int64_t i) { return ref{this, i}; }
    inline T *ptr() const { return p_; }

  private:
    T *p_;
    maxi_state *s_;
};

// ------------------------------------------------------------------------------------------------
// Start / end of a kernel call.
inline void begin_run() {
    state.reset();
    maxi_ports.reset();
    sched.abort.store(false);
    sched.blocked = 0;
    sched.nblocks = 0;
    co.active = cfg.threaded && (cfg.timed || cfg.exact_depth);
    co.abort = false;
    co.current = nullptr;
    sched.waiters.clear();
    sched.live.store(1);  // the calling thread
    proc &p = me();
    p.st = state.find("top");
    p.clk = 0;
    p.cur = nullptr;
    p.stamp = 0;
}

}  // namespace sim
}  // namespace padless

#endif  // PADLESS_SIM_RT_H
