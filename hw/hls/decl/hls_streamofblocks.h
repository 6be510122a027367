// Declarations of Vitis HLS's hls::stream_of_blocks and its hls::write_lock / hls::read_lock holding only
// the members UG1399 documents ("HLS Stream of Blocks Library", "Stream-of-Blocks Modeling Style",
// "Checking for Full and Empty Blocks"): a stream of array blocks of optional depth (default 2) with
// empty() and full(); a lock acquired by its constructor from the stream, released by its destructor,
// used as the block itself (an array reference). Used by `padless synth-check` only (declarations, never
// run).
#ifndef PADLESS_DECL_HLS_STREAMOFBLOCKS_H
#define PADLESS_DECL_HLS_STREAMOFBLOCKS_H

namespace hls {

template <typename __BT, unsigned DEPTH = 2> class stream_of_blocks {
  public:
    stream_of_blocks();
    bool empty();
    bool full();

  private:
    stream_of_blocks(const stream_of_blocks &);
    stream_of_blocks &operator=(const stream_of_blocks &);
};

template <typename __BT> class write_lock {
  public:
    template <unsigned DEPTH> write_lock(stream_of_blocks<__BT, DEPTH> &s);
    ~write_lock();
    operator __BT &();

  private:
    write_lock(const write_lock &);
    write_lock &operator=(const write_lock &);
};

template <typename __BT> class read_lock {
  public:
    template <unsigned DEPTH> read_lock(stream_of_blocks<__BT, DEPTH> &s);
    ~read_lock();
    operator __BT &();

  private:
    read_lock(const read_lock &);
    read_lock &operator=(const read_lock &);
};

}  // namespace hls

#endif  // PADLESS_DECL_HLS_STREAMOFBLOCKS_H
