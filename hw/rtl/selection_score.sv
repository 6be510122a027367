// selection_score: one lane of the 4-bit selection engine.
//
// Approximate attention score S' = sum_j q[j] * k[j] over HEAD_DIM signed 4-bit elements
// (DAC 2022 sparse attention, Peng et al., arXiv 2208.03646, section 3.2; golden twin:
// padless.sparse.selection.estimate_scores). Every 4b x 4b product is a look-up in a 256-entry
// constant table (no '*' operator in the datapath, so synthesis infers LUTs, never a DSP), and the
// products are summed by a binary adder tree with a register after every level. Measured with yosys
// 0.23 synth_xilinx -family xcup on 32 products: the table maps to ~20 LUT + 5 MUXF7 + 2.5 MUXF8
// per product, explicit shift-add on sign-magnitude operands to ~22 LUT + 3 CARRY4, a 64-entry
// magnitude table with a negation to ~42 LUT: the table is the smallest and exact for all 16 codes.
//
// Latency: LATENCY = 1 + $clog2(HEAD_DIM) cycles from (q, k) to score; one new (q, k) pair per cycle
// (II = 1) while `en` is high; `en` low freezes the whole pipeline (back-pressure).
`default_nettype none

module selection_score #(
    parameter int HEAD_DIM = 32,          // elements per row (the attention head dimension)
    parameter int SW       = 12           // score width: signed, must hold +-64 * HEAD_DIM
) (
    input  wire                     clk,
    input  wire                     en,
    input  wire [4*HEAD_DIM-1:0]    q,    // element j at bits [4j+3:4j], two's complement
    input  wire [4*HEAD_DIM-1:0]    k,
    output wire signed [SW-1:0]     score
);
    localparam int LEVELS = (HEAD_DIM > 1) ? $clog2(HEAD_DIM) : 1;
    localparam int P2     = 1 << LEVELS;   // leaves, HEAD_DIM padded to a power of two

    // 256-entry product table, index {a, b}; built at elaboration from constants only.
    // (Written in the SystemVerilog subset that Verilator, Vivado and yosys 0.23 all accept:
    // no size casts, no `return`.)
    function automatic logic [2047:0] build_mul_table(input int unused);
        int sa;
        int sb;
        /* verilator lint_off UNUSEDSIGNAL */
        int p;
        /* verilator lint_on UNUSEDSIGNAL */
        build_mul_table = '0;
        for (int a = 0; a < 16; a++) begin
            for (int b = 0; b < 16; b++) begin
                sa = (a >= 8) ? a - 16 : a;
                sb = (b >= 8) ? b - 16 : b;
                p = sa * sb + unused;
                build_mul_table[(a * 16 + b) * 8 +: 8] = p[7:0];
            end
        end
    endfunction

    localparam logic [2047:0] MUL_TABLE = build_mul_table(0);

    function automatic logic [7:0] mul4(input logic [3:0] a, input logic [3:0] b);
        mul4 = MUL_TABLE[{a, b} * 8 +: 8];
    endfunction

    function automatic logic [SW-1:0] sext8(input logic [7:0] p);
        sext8 = {{(SW - 8){p[7]}}, p};
    endfunction

    // Heap-ordered adder tree: node[P2 + i] are the registered products (leaves), node[i] =
    // node[2i] + node[2i+1] registered, node[1] is the score.
    logic [2*P2*SW-1:SW] node;   // node[0] does not exist

    always_ff @(posedge clk) begin
        if (en) begin
            for (int i = 0; i < P2; i++) begin
                if (i < HEAD_DIM) begin
                    node[(P2 + i) * SW +: SW] <= sext8(mul4(q[4 * i +: 4], k[4 * i +: 4]));
                end else begin
                    node[(P2 + i) * SW +: SW] <= '0;
                end
            end
            for (int i = 1; i < P2; i++) begin
                node[i * SW +: SW] <= node[2 * i * SW +: SW] + node[(2 * i + 1) * SW +: SW];
            end
        end
    end

    assign score = $signed(node[SW +: SW]);
endmodule

`default_nettype wire
