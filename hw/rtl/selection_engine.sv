// selection_engine: 4-bit approximate scores + streaming top-k for one query row at a time.
//
// Golden twin: padless.sparse.selection (DAC 2022 sparse attention, Peng et al., arXiv 2208.03646,
// section 3.2): kept = topk_indices(estimate_scores(q4, k4), k) - a larger score ranks first, ties go
// to the lower key index, kept indices leave in ASCENDING key order, k >= n keeps every key.
//
// Streams (AXI4-Stream, valid/ready back-pressure on all three; register map: docs/registers.md):
//   s_axis_query  one beat per query row: TDATA = HEAD_DIM signed 4-bit elements (element j in
//                 bits [4j+3:4j]), TUSER = k for this row (0 or > K means K). No TLAST.
//   s_axis_key    the key rows of that query, LANES keys per beat (lane l in bits
//                 [4*HEAD_DIM*(l+1)-1 : 4*HEAD_DIM*l], key index = LANES * beat + l). TLAST marks the
//                 last beat of the row; on that beat TKEEP marks the valid lanes (lane l valid when
//                 TKEEP[l * HEAD_DIM / 2] is set; valid lanes are contiguous from lane 0). Other beats
//                 are full. At most MAX_SEQ_LEN keys per row.
//   m_axis_idx    the kept key indices of the row, ascending, min(k, n) beats, TLAST on the last one.
//
// Throughput: one key beat per cycle (LANES keys per cycle, II = 1). The next row's query beat is
// accepted in the same cycle as the current row's TLAST key beat, so back-to-back rows stream with no
// bubble: ceil(n / LANES) cycles per row while the output side keeps up. The output emits one index
// per cycle (min(k, n) per row, in parallel with the next row); with LANES > 1 the per-lane top-k
// lists are merged first (min(k, n) cycles, overlapped with emitting the previous row), so rows of
// fewer than about k + 2 beats stall the key stream for the difference.
// Latency from the TLAST beat to the first index: 2 + $clog2(HEAD_DIM) cycles (LANES = 1).
// Resources: products come from a 256-entry constant table (LUTs, zero DSPs).
`default_nettype none

module selection_engine #(
    parameter int HEAD_DIM    = 32,   // 4-bit elements per row, even
    parameter int K           = 16,   // largest top-k (sorter slots per lane)
    parameter int MAX_SEQ_LEN = 512,  // largest key count per row, >= 2
    parameter int LANES       = 1     // keys scored per cycle
) (
    input  wire                                  ap_clk,
    input  wire                                  ap_rst_n,

    input  wire [4*HEAD_DIM-1:0]                 s_axis_query_tdata,
    input  wire [$clog2(K+1)-1:0]                s_axis_query_tuser,
    input  wire                                  s_axis_query_tvalid,
    output logic                                 s_axis_query_tready,

    input  wire [LANES*4*HEAD_DIM-1:0]           s_axis_key_tdata,
    input  wire [LANES*HEAD_DIM/2-1:0]           s_axis_key_tkeep,
    input  wire                                  s_axis_key_tlast,
    input  wire                                  s_axis_key_tvalid,
    output logic                                 s_axis_key_tready,

    output logic [(($clog2(MAX_SEQ_LEN)+7)/8)*8-1:0] m_axis_idx_tdata,
    output logic                                 m_axis_idx_tvalid,
    output logic                                 m_axis_idx_tlast,
    input  wire                                  m_axis_idx_tready
);
    localparam int LANE_BITS = 4 * HEAD_DIM;
    localparam int LANE_KEEP = HEAD_DIM / 2;
    localparam int IDX_W     = $clog2(MAX_SEQ_LEN);
    localparam int OUT_W     = ((IDX_W + 7) / 8) * 8;
    localparam int KW        = $clog2(K + 1);
    localparam int SW        = $clog2(64 * HEAD_DIM + 1) + 1;   // |score| <= 64 * HEAD_DIM
    localparam int LAT       = 1 + ((HEAD_DIM > 1) ? $clog2(HEAD_DIM) : 1);

    wire rst = !ap_rst_n;

    // Constants at the widths they are used (yosys 0.23 takes no size casts).
    localparam logic [IDX_W-1:0] LANES_I = LANES[IDX_W-1:0];
    localparam logic [KW-1:0]    K_K     = K[KW-1:0];
    localparam logic [KW-1:0]    ONE_KW  = 1;
    localparam logic [K-1:0]     ONE_K   = 1;

    // ---------------------------------------------------------------- input side
    logic [LANE_BITS-1:0] q_reg;
    logic [KW-1:0]        k_reg;
    logic                 q_loaded;
    logic [IDX_W-1:0]     key_base;        // index of lane 0 of the next key beat
    logic                 pipe_en;         // the whole score pipeline advances

    wire key_fire = q_loaded && pipe_en && s_axis_key_tvalid;
    assign s_axis_key_tready   = q_loaded && pipe_en;
    // A new query is taken when none is loaded, or in the cycle the current row's last key is taken.
    assign s_axis_query_tready = !q_loaded || (key_fire && s_axis_key_tlast);
    wire q_fire = s_axis_query_tready && s_axis_query_tvalid;

    // k of the arriving row: TUSER, with 0 or > K meaning K.
    logic [KW-1:0] k_in;
    if (K == (1 << KW) - 1) begin : g_k_full   // TUSER cannot exceed K
        assign k_in = (s_axis_query_tuser == '0) ? K_K : s_axis_query_tuser;
    end else begin : g_k_clamp
        assign k_in = (s_axis_query_tuser == '0 || s_axis_query_tuser > K_K) ? K_K : s_axis_query_tuser;
    end

    always_ff @(posedge ap_clk) begin
        if (rst) begin
            q_loaded <= 1'b0;
            key_base <= '0;
        end else begin
            if (key_fire) begin
                key_base <= s_axis_key_tlast ? '0 : key_base + LANES_I;
            end
            if (q_fire) begin
                q_loaded <= 1'b1;
            end else if (key_fire && s_axis_key_tlast) begin
                q_loaded <= 1'b0;
            end
        end
        if (q_fire) begin
            q_reg <= s_axis_query_tdata;
            k_reg <= k_in;
        end
    end

    // Lane-valid bits of this beat (TKEEP, one bit per lane taken at the lane's first byte).
    logic [LANES-1:0] lane_keep;
    always_comb begin
        for (int l = 0; l < LANES; l++) begin
            lane_keep[l] = s_axis_key_tkeep[l * LANE_KEEP];
        end
    end

    // ---------------------------------------------------------------- score pipeline
    // Side band travelling with each beat: valid, lane-valid bits, last, base index, k of the row.
    localparam int SB_W = 1 + LANES + 1 + IDX_W + KW;
    logic [LAT*SB_W-1:0] sb;
    always_ff @(posedge ap_clk) begin
        if (rst) begin
            sb <= '0;
        end else if (pipe_en) begin
            sb[SB_W-1:0] <= {key_fire, lane_keep, s_axis_key_tlast, key_base, k_reg};
            for (int i = 1; i < LAT; i++) begin
                sb[i * SB_W +: SB_W] <= sb[(i - 1) * SB_W +: SB_W];
            end
        end
    end

    wire [SB_W-1:0]  tail = sb[(LAT - 1) * SB_W +: SB_W];
    wire [KW-1:0]    tail_k     = tail[KW-1:0];
    wire [IDX_W-1:0] tail_base  = tail[KW +: IDX_W];
    wire             tail_last  = tail[KW + IDX_W];
    wire [LANES-1:0] tail_lanes = tail[KW + IDX_W + 1 +: LANES];
    wire             tail_valid = tail[SB_W-1];

    logic fin_free;                 // the output side can take a finished row
    assign pipe_en = !(tail_valid && tail_last && !fin_free);
    wire row_end = tail_valid && tail_last && fin_free;

    logic [LANES*K-1:0]       lane_v;
    logic [LANES*K*SW-1:0]    lane_s;
    logic [LANES*K*IDX_W-1:0] lane_i;

    for (genvar l = 0; l < LANES; l++) begin : g_lane
        localparam logic [IDX_W-1:0] LANE_I = l[IDX_W-1:0];
        wire signed [SW-1:0] score;
        selection_score #(.HEAD_DIM(HEAD_DIM), .SW(SW)) u_score (
            .clk(ap_clk), .en(pipe_en),
            .q(q_reg), .k(s_axis_key_tdata[l * LANE_BITS +: LANE_BITS]),
            .score(score)
        );
        selection_sorter #(.K(K), .SW(SW), .IDX_W(IDX_W)) u_sorter (
            .clk(ap_clk), .rst(rst), .en(pipe_en),
            .in_valid(tail_valid && tail_lanes[l]), .in_score(score),
            .in_idx(tail_base + LANE_I), .clear(row_end),
            .nxt_valid(lane_v[l * K +: K]),
            .nxt_score(lane_s[l * K * SW +: K * SW]),
            .nxt_idx(lane_i[l * K * IDX_W +: K * IDX_W])
        );
    end

    // ---------------------------------------------------------------- output side
    // fin_v / fin_i: the kept set of the finished row; each output beat takes the smallest index.
    logic [K-1:0]       fin_v;
    logic [K*IDX_W-1:0] fin_i;
    logic [K-1:0]       sel;          // one-hot: the slot holding the smallest kept index
    logic [IDX_W-1:0]   sel_idx;
    logic               sel_found;

    always_comb begin
        sel = '0;
        sel_idx = '0;
        sel_found = 1'b0;
        for (int i = 0; i < K; i++) begin
            if (fin_v[i] && (!sel_found || fin_i[i * IDX_W +: IDX_W] < sel_idx)) begin
                sel_found = 1'b1;
                sel = ONE_K << i;
                sel_idx = fin_i[i * IDX_W +: IDX_W];
            end
        end
    end

    if (OUT_W > IDX_W) begin : g_pad
        assign m_axis_idx_tdata = {{(OUT_W - IDX_W){1'b0}}, sel_idx};
    end else begin : g_nopad
        assign m_axis_idx_tdata = sel_idx;
    end
    assign m_axis_idx_tvalid = sel_found;
    assign m_axis_idx_tlast  = ((fin_v & (fin_v - ONE_K)) == '0);   // exactly one index left
    wire   m_fire = m_axis_idx_tvalid && m_axis_idx_tready;

    if (LANES == 1) begin : g_direct
        // One lane: the sorter already holds the row's top K, best first; keep the first k slots.
        assign fin_free = (fin_v == '0);
        // Thermometer mask of the first k slots of the finishing row.
        wire [K-1:0] kmask = ~({K{1'b1}} << tail_k);
        always_ff @(posedge ap_clk) begin
            if (rst) begin
                fin_v <= '0;
            end else if (row_end) begin
                fin_v <= lane_v & kmask;
            end else if (m_fire) begin
                fin_v <= fin_v & ~sel;
            end
            if (row_end) begin
                fin_i <= lane_i;
            end
        end
        /* verilator lint_off UNUSEDSIGNAL */
        wire unused_scores = ^lane_s;
        /* verilator lint_on UNUSEDSIGNAL */
    end else begin : g_merge
        // LANES sorted lists (lane l holds keys l, l + LANES, ...): the global top k is the k best
        // heads popped one per cycle (a LANES-way merge of sorted lists) into kv / ki, which move to
        // the output buffer as soon as it is empty, so merging row r + 1 overlaps emitting row r.
        logic [LANES*K-1:0]       cv;
        logic [K-1:0]             kv;
        logic [K*IDX_W-1:0]       ki;
        logic                     kready;   // kv / ki hold a merged row waiting for the output buffer
        logic                     merging;
        assign fin_free = !merging && !kready;
        logic [LANES*K*SW-1:0]    cs;
        logic [LANES*K*IDX_W-1:0] ci;
        logic [KW-1:0]            mcnt;
        logic [KW-1:0]            mk;
        logic [LANES-1:0]         best;     // one-hot lane of the best head
        logic                     best_ok;
        logic signed [SW-1:0]     best_s;
        logic [IDX_W-1:0]         best_i;
        localparam logic [LANES-1:0] ONE_L = 1;

        always_comb begin
            best = '0;
            best_ok = 1'b0;
            best_s = '0;
            best_i = '0;
            for (int l = 0; l < LANES; l++) begin
                if (cv[l * K] && (!best_ok
                        || $signed(cs[l * K * SW +: SW]) > best_s
                        || ($signed(cs[l * K * SW +: SW]) == best_s && ci[l * K * IDX_W +: IDX_W] < best_i))) begin
                    best_ok = 1'b1;
                    best = ONE_L << l;
                    best_s = $signed(cs[l * K * SW +: SW]);
                    best_i = ci[l * K * IDX_W +: IDX_W];
                end
            end
        end

        always_ff @(posedge ap_clk) begin
            if (rst) begin
                merging <= 1'b0;
                kready <= 1'b0;
                kv <= '0;
                fin_v <= '0;
                cv <= '0;
            end else begin
                // Merge: pop the best head of the LANES lists into kv / ki, one per cycle.
                if (row_end) begin
                    cv <= lane_v;
                    cs <= lane_s;
                    ci <= lane_i;
                    mcnt <= '0;
                    mk <= tail_k;
                    merging <= 1'b1;
                end else if (merging) begin
                    if (!best_ok) begin                  // fewer than k keys in the row
                        merging <= 1'b0;
                        kready <= 1'b1;
                    end else begin
                        kv <= kv | (ONE_K << mcnt);
                        for (int i = 0; i < K; i++) begin
                            if (mcnt == i[KW-1:0]) begin
                                ki[i * IDX_W +: IDX_W] <= best_i;
                            end
                        end
                        mcnt <= mcnt + ONE_KW;
                        if (mcnt + ONE_KW == mk) begin   // the k-th best is in
                            merging <= 1'b0;
                            kready <= 1'b1;
                        end
                        for (int l = 0; l < LANES; l++) begin
                            if (best[l]) begin
                                for (int i = 0; i < K - 1; i++) begin
                                    cv[l * K + i] <= cv[l * K + i + 1];
                                    cs[(l * K + i) * SW +: SW] <= cs[(l * K + i + 1) * SW +: SW];
                                    ci[(l * K + i) * IDX_W +: IDX_W] <= ci[(l * K + i + 1) * IDX_W +: IDX_W];
                                end
                                cv[l * K + K - 1] <= 1'b0;
                            end
                        end
                    end
                end
                // Output buffer: take the merged row when empty, else emit one index per handshake.
                if (kready && fin_v == '0) begin
                    fin_v <= kv;
                    fin_i <= ki;
                    kv <= '0;
                    kready <= 1'b0;
                end else if (m_fire) begin
                    fin_v <= fin_v & ~sel;
                end
            end
        end
    end
endmodule

`default_nettype wire
