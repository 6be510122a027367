// Declarations of Vitis HLS's hls::stream holding only the members UG1399 documents ("HLS Stream Library":
// blocking read/write and the >> / << operators, non-blocking read_nb/write_nb, empty, full, size,
// capacity; streams are passed by reference, never copied). Used by `padless synth-check`
// (sw/padless/synth_check.py) to compile the kernel's __SYNTHESIS__ branch with g++ / clang++
// -fsyntax-only: a member the kernel uses that Vitis does not document fails to compile here.
// Declarations only: nothing here runs (the C-simulation uses sim_rt.h).
#ifndef PADLESS_DECL_HLS_STREAM_H
#define PADLESS_DECL_HLS_STREAM_H

namespace hls {

// hls::stream<T> (depth set by the tool or a STREAM pragma) is the type every process takes by reference;
// hls::stream<T, DEPTH> (UG1399 "Specifying the depth of a stream") is one of them with its depth fixed, so
// it binds to a `hls::stream<T> &` parameter as in Vitis's own header.
template <typename T, int DEPTH = 0> class stream;

template <typename T> class stream<T, 0> {
  public:
    stream();
    explicit stream(const char *name);

    // blocking access (UG1399 "Blocking Read Methods", "Blocking Write Methods")
    T read();
    void read(T &dout);
    void operator>>(T &dout);
    void write(const T &din);
    void operator<<(const T &din);

    // non-blocking access (UG1399 "Non-Blocking Read", "Non-Blocking Write")
    bool read_nb(T &dout);
    bool write_nb(const T &din);

    // state (UG1399 "hls::stream.empty()", ".full()", ".size()", ".capacity()")
    bool empty() const;
    bool full() const;
    unsigned size() const;
    unsigned capacity() const;

  private:
    stream(const stream &);             // a stream is never copied (pass by reference)
    stream &operator=(const stream &);
};

template <typename T, int DEPTH> class stream : public stream<T, 0> {
  public:
    stream();
    explicit stream(const char *name);

  private:
    stream(const stream &);
    stream &operator=(const stream &);
};

}  // namespace hls

#endif  // PADLESS_DECL_HLS_STREAM_H
