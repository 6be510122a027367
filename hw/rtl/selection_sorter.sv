// selection_sorter: streaming top-K insertion sorter (one insert per cycle, II = 1).
//
// Slots 0..K-1 hold the best entries seen so far, best first. The ranking is the golden model's
// (padless.sparse.selection.topk_indices): a larger score ranks first; equal scores rank the lower
// key index first. A new entry is compared with every slot in parallel (one comparator + one mux
// per slot, no loop-carried chain), so the critical path does not grow with K.
//
// `nxt_*` is the content after this cycle's insert; the engine copies it at the end of a row while
// `clear` empties the sorter for the next row in the same cycle.
`default_nettype none

module selection_sorter #(
    parameter int K     = 16,
    parameter int SW    = 12,
    parameter int IDX_W = 9
) (
    input  wire                  clk,
    input  wire                  rst,       // synchronous, active high
    input  wire                  en,        // pipeline advance
    input  wire                  in_valid,
    input  wire signed [SW-1:0]  in_score,
    input  wire [IDX_W-1:0]      in_idx,
    input  wire                  clear,     // with en: load an empty sorter after this cycle
    output logic [K-1:0]         nxt_valid,
    output logic [K*SW-1:0]      nxt_score,
    output logic [K*IDX_W-1:0]   nxt_idx
);
    logic [K-1:0]       v;
    logic [K*SW-1:0]    s;
    logic [K*IDX_W-1:0] x;
    logic [K-1:0]       beats;   // the new entry ranks before slot i

    always_comb begin
        // Full ranking (score, then lower index). Keys reach a lane in ascending index order, so the
        // index term never decides here; it is kept because yosys 0.23 maps this form to fewer LUTs
        // (688 LUT + 48 CARRY4 at K = 16, against 1534 LUT + 990 MUXF7/8 with a score-only compare).
        for (int i = 0; i < K; i++) begin
            beats[i] = in_valid && (!v[i]
                        || (in_score > $signed(s[i * SW +: SW]))
                        || (in_score == $signed(s[i * SW +: SW]) && in_idx < x[i * IDX_W +: IDX_W]));
        end
        // Slot 0: keep, or take the new entry.
        nxt_valid[0]         = beats[0] ? 1'b1 : v[0];
        nxt_score[0 +: SW]   = beats[0] ? in_score : s[0 +: SW];
        nxt_idx[0 +: IDX_W]  = beats[0] ? in_idx : x[0 +: IDX_W];
        // Slot i > 0: keep, shift down from slot i - 1, or take the new entry.
        for (int i = 1; i < K; i++) begin
            if (!beats[i]) begin
                nxt_valid[i]                 = v[i];
                nxt_score[i * SW +: SW]      = s[i * SW +: SW];
                nxt_idx[i * IDX_W +: IDX_W]  = x[i * IDX_W +: IDX_W];
            end else if (beats[i - 1]) begin
                nxt_valid[i]                 = v[i - 1];
                nxt_score[i * SW +: SW]      = s[(i - 1) * SW +: SW];
                nxt_idx[i * IDX_W +: IDX_W]  = x[(i - 1) * IDX_W +: IDX_W];
            end else begin
                nxt_valid[i]                 = 1'b1;
                nxt_score[i * SW +: SW]      = in_score;
                nxt_idx[i * IDX_W +: IDX_W]  = in_idx;
            end
        end
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            v <= '0;
        end else if (en) begin
            v <= clear ? '0 : nxt_valid;
        end
        if (en) begin
            s <= nxt_score;
            x <= nxt_idx;
        end
    end
endmodule

`default_nettype wire
