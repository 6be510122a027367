// length_dispatcher: runs packed sequences through NUM_STAGES HLS stages as a permutation flow shop.
//
// Policy (golden twin: padless.schedule.scheduler.flow_shop_starts): the host decides the order by
// the order it pushes descriptors; every stage runs the jobs in that order; job j starts stage s as
// soon as it has finished stage s-1 and job j-1 has finished stage s, plus HANDOFF_CYCLES = 1
// (the registered ap_start). Unlimited buffering between stages is free here because a job is just
// a pointer into the descriptor queue: stage s runs job issued[s] once done_cnt[s-1] > issued[s].
//
// Host side: AXI4-Lite slave s_axi_control (register map in docs/registers.md and padless.rtl
// REGISTERS): descriptors (sequence id, token offset, length) are pushed through DESC_* registers,
// CTRL.START begins a run, CTRL.DONE / ISR / `interrupt` report its end, per-stage busy / idle cycle
// counters and the run's cycle count are readable.
//
// Stage side, per stage s (Vitis HLS ap_ctrl_hs master):
//   stage_ap_start[s]  held high with the job's arguments until the stage answers stage_ap_ready[s];
//                      the rising edge with start && ready is the job's start cycle.
//   stage_ap_done[s]   one-cycle pulse when the job ends; only counted after the start handshake.
//   stage_seq_id / stage_offset / stage_length: the job's descriptor (ap_none scalar arguments).
// A stage gets its next start only after its ap_done, so a job occupies the stage from the start
// edge to the edge that samples ap_done: busy cycles = that distance = the stage latency.
`default_nettype none

module length_dispatcher #(
    parameter int NUM_STAGES         = 6,    // HLS stages in the layer dataflow, 1..24
    parameter int DEPTH              = 16,   // descriptor queue entries, a power of two, <= 65536
    parameter int SEQ_W              = 16,   // sequence id bits, 1..31
    parameter int LEN_W              = 16    // length bits (tokens), 1..31
) (
    input  wire                           ap_clk,
    input  wire                           ap_rst_n,

    /* verilator lint_off UNUSEDSIGNAL */     // address bits [1:0]: word-aligned registers
    input  wire [7:0]                     s_axi_control_awaddr,
    input  wire                           s_axi_control_awvalid,
    output logic                          s_axi_control_awready,
    input  wire [31:0]                    s_axi_control_wdata,
    input  wire [3:0]                     s_axi_control_wstrb,
    input  wire                           s_axi_control_wvalid,
    output logic                          s_axi_control_wready,
    output logic [1:0]                    s_axi_control_bresp,
    output logic                          s_axi_control_bvalid,
    input  wire                           s_axi_control_bready,
    input  wire [7:0]                     s_axi_control_araddr,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire                           s_axi_control_arvalid,
    output logic                          s_axi_control_arready,
    output logic [31:0]                   s_axi_control_rdata,
    output logic [1:0]                    s_axi_control_rresp,
    output logic                          s_axi_control_rvalid,
    input  wire                           s_axi_control_rready,
    /* verilator lint_off SYMRSVDWORD */  // `interrupt` is the Vitis RTL-kernel port name
    output logic                          interrupt,
    /* verilator lint_on SYMRSVDWORD */

    output logic [NUM_STAGES-1:0]         stage_ap_start,
    input  wire  [NUM_STAGES-1:0]         stage_ap_ready,
    input  wire  [NUM_STAGES-1:0]         stage_ap_done,
    output logic [NUM_STAGES*SEQ_W-1:0]   stage_seq_id,
    output logic [NUM_STAGES*32-1:0]      stage_offset,      // token offset, 32 bits
    output logic [NUM_STAGES*LEN_W-1:0]   stage_length
);
    localparam int OFF_W = 32;
    localparam int AW = $clog2(DEPTH);     // queue address
    localparam int PW = AW + 1;            // job counters: one extra bit tells full from empty
    localparam int S  = NUM_STAGES;
    localparam logic [PW-1:0] ONE_P   = 1;
    localparam logic [PW-1:0] DEPTH_P = DEPTH[PW-1:0];
    localparam logic [31:0]   INFO    = {8'd1, DEPTH[15:0], S[7:0]};
    localparam logic [31:0]   HANDOFF_CYCLES = 32'd1;

    // Register offsets (bytes); docs/registers.md and padless.rtl.DISPATCHER_REGISTERS hold the same map.
    localparam logic [7:0] A_CTRL = 8'h00, A_GIE = 8'h04, A_IER = 8'h08, A_ISR = 8'h0C;
    localparam logic [7:0] A_INFO = 8'h10, A_QSTAT = 8'h14, A_SEQ = 8'h18, A_OFF = 8'h1C;
    localparam logic [7:0] A_LEN = 8'h20, A_JOBS = 8'h24, A_CYC = 8'h28, A_HAND = 8'h2C;
    localparam logic [7:0] A_STAGE0 = 8'h40;   // + 8 s: STAGE_BUSY[s], + 8 s + 4: STAGE_IDLE[s]

    wire rst = !ap_rst_n;

    // ---------------------------------------------------------------- state
    logic            running;
    logic            done_flag;     // CTRL.DONE, clear on read
    logic            gie;
    logic            ier;
    logic            isr;
    logic            overflow;      // a push into a full queue was dropped (sticky until START)
    logic [SEQ_W-1:0] d_seq;
    logic [OFF_W-1:0] d_off;
    logic [LEN_W-1:0] d_len;
    logic [31:0]     jobs_done;
    logic [31:0]     run_cycles;
    logic [S*32-1:0] busy_cnt;
    logic [S*32-1:0] idle_cnt;

    logic [SEQ_W-1:0] q_seq [DEPTH];
    logic [OFF_W-1:0] q_off [DEPTH];
    logic [LEN_W-1:0] q_len [DEPTH];
    logic [PW-1:0]    pushed;
    logic [S*PW-1:0]  issued;       // jobs given to stage s so far (its next job's number)
    logic [S*PW-1:0]  done_cnt;     // jobs finished by stage s so far
    logic [S-1:0]     st_run;       // stage s is running a job (start accepted, done not seen)

    wire [PW-1:0] retired = done_cnt[(S - 1) * PW +: PW];
    wire [PW-1:0] queued  = pushed - retired;
    wire          q_full  = (queued == DEPTH_P);

    // ---------------------------------------------------------------- AXI4-Lite
    // Write: address and data are taken together in one cycle; one response outstanding at a time.
    wire wr_fire = s_axi_control_awvalid && s_axi_control_wvalid && !s_axi_control_bvalid;
    assign s_axi_control_awready = wr_fire;
    assign s_axi_control_wready  = wr_fire;
    assign s_axi_control_bresp   = 2'b00;
    assign s_axi_control_rresp   = 2'b00;
    assign s_axi_control_arready = !s_axi_control_rvalid;
    wire rd_fire = s_axi_control_arvalid && !s_axi_control_rvalid;
    wire [7:0] wa = {s_axi_control_awaddr[7:2], 2'b00};
    wire [7:0] ra = {s_axi_control_araddr[7:2], 2'b00};
    wire [4:0] ra_stage = ra[7:3] - 5'd8;     // stage of a STAGE_BUSY / STAGE_IDLE read
    wire [31:0] wmask = {{8{s_axi_control_wstrb[3]}}, {8{s_axi_control_wstrb[2]}},
                         {8{s_axi_control_wstrb[1]}}, {8{s_axi_control_wstrb[0]}}};
    wire [31:0] wdat = s_axi_control_wdata;

    wire start_cmd = wr_fire && wa == A_CTRL && s_axi_control_wstrb[0] && wdat[0] && !running;
    wire push_cmd  = wr_fire && wa == A_LEN;

    // Byte-enable merge of the descriptor staging registers.
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] wr_seq32 = ({{(32 - SEQ_W){1'b0}}, d_seq} & ~wmask) | (wdat & wmask);
    wire [31:0] wr_off32 = (d_off & ~wmask) | (wdat & wmask);
    wire [31:0] wr_len32 = ({{(32 - LEN_W){1'b0}}, d_len} & ~wmask) | (wdat & wmask);
    /* verilator lint_on UNUSEDSIGNAL */
    wire [SEQ_W-1:0] wr_seq = wr_seq32[SEQ_W-1:0];
    wire [OFF_W-1:0] wr_off = wr_off32[OFF_W-1:0];
    wire [LEN_W-1:0] wr_len = wr_len32[LEN_W-1:0];

    // ---------------------------------------------------------------- stage issue logic
    logic [S-1:0] done_in;   // ap_done of a running job, this cycle
    logic [S-1:0] issue;     // raise ap_start for the stage's next job at this edge
    always_comb begin
        for (int s = 0; s < S; s++) begin
            done_in[s] = st_run[s] && stage_ap_done[s];
        end
        for (int s = 0; s < S; s++) begin
            // The stage is free (or frees this cycle) and its next job has left the previous stage.
            issue[s] = running && ((!stage_ap_start[s] && !st_run[s]) || done_in[s]);
            if (s == 0) begin
                issue[s] = issue[s] && (pushed != issued[0 +: PW]);
            end else begin
                issue[s] = issue[s]
                    && ((done_cnt[(s - 1) * PW +: PW] + {{(PW - 1){1'b0}}, done_in[s - 1]}) != issued[s * PW +: PW]);
            end
        end
    end

    wire all_retired = (pushed == retired) && (stage_ap_start == '0);
    wire finish = running && all_retired && !start_cmd;

    always_ff @(posedge ap_clk) begin
        if (rst) begin
            running <= 1'b0;
            done_flag <= 1'b0;
            gie <= 1'b0;
            ier <= 1'b0;
            isr <= 1'b0;
            overflow <= 1'b0;
            pushed <= '0;
            issued <= '0;
            done_cnt <= '0;
            st_run <= '0;
            stage_ap_start <= '0;
            jobs_done <= '0;
            run_cycles <= '0;
            busy_cnt <= '0;
            idle_cnt <= '0;
            d_seq <= '0;
            d_off <= '0;
            d_len <= '0;
            s_axi_control_bvalid <= 1'b0;
            s_axi_control_rvalid <= 1'b0;
            s_axi_control_rdata <= '0;
        end else begin
            // ---- AXI4-Lite write side effects
            if (wr_fire) begin
                s_axi_control_bvalid <= 1'b1;
                case (wa)
                    A_GIE: if (s_axi_control_wstrb[0]) gie <= wdat[0];
                    A_IER: if (s_axi_control_wstrb[0]) ier <= wdat[0];
                    A_ISR: if (s_axi_control_wstrb[0] && wdat[0]) isr <= 1'b0;   // write 1 to clear
                    A_SEQ: d_seq <= wr_seq;
                    A_OFF: d_off <= wr_off;
                    A_LEN: d_len <= wr_len;
                    default: ;
                endcase
            end else if (s_axi_control_bready) begin
                s_axi_control_bvalid <= 1'b0;
            end

            // ---- descriptor push (DESC_LENGTH write pushes {DESC_SEQ_ID, DESC_OFFSET, this length})
            if (push_cmd) begin
                if (q_full) begin
                    overflow <= 1'b1;
                end else begin
                    pushed <= pushed + ONE_P;
                end
            end

            // ---- run control
            if (start_cmd) begin
                running <= 1'b1;
                done_flag <= 1'b0;
                overflow <= 1'b0;
                jobs_done <= '0;
                run_cycles <= '0;
                busy_cnt <= '0;
                idle_cnt <= '0;
            end else if (finish) begin
                running <= 1'b0;
                done_flag <= 1'b1;
                isr <= 1'b1;
            end

            // ---- counters: one step per cycle of the run
            if (running) begin
                run_cycles <= run_cycles + 32'd1;
                for (int s = 0; s < S; s++) begin
                    if (st_run[s]) begin
                        busy_cnt[s * 32 +: 32] <= busy_cnt[s * 32 +: 32] + 32'd1;
                    end else begin
                        idle_cnt[s * 32 +: 32] <= idle_cnt[s * 32 +: 32] + 32'd1;
                    end
                end
            end
            if (done_in[S - 1]) begin
                jobs_done <= jobs_done + 32'd1;
            end

            // ---- stages
            for (int s = 0; s < S; s++) begin
                if (issue[s]) begin
                    stage_ap_start[s] <= 1'b1;
                    issued[s * PW +: PW] <= issued[s * PW +: PW] + ONE_P;
                end else if (stage_ap_start[s] && stage_ap_ready[s]) begin
                    stage_ap_start[s] <= 1'b0;
                end
                if (stage_ap_start[s] && stage_ap_ready[s]) begin
                    st_run[s] <= 1'b1;
                end else if (done_in[s]) begin
                    st_run[s] <= 1'b0;
                end
                if (done_in[s]) begin
                    done_cnt[s * PW +: PW] <= done_cnt[s * PW +: PW] + ONE_P;
                end
            end

            // ---- AXI4-Lite read
            if (rd_fire) begin
                s_axi_control_rvalid <= 1'b1;
                s_axi_control_rdata <= '0;
                case (ra)
                    A_CTRL: begin
                        s_axi_control_rdata <= {28'd0, !running, !running, done_flag, running};
                        done_flag <= 1'b0;   // clear on read, as in Vitis HLS ap_ctrl_hs
                    end
                    A_GIE:   s_axi_control_rdata <= {31'd0, gie};
                    A_IER:   s_axi_control_rdata <= {31'd0, ier};
                    A_ISR:   s_axi_control_rdata <= {31'd0, isr};
                    A_INFO:  s_axi_control_rdata <= INFO;
                    A_QSTAT: s_axi_control_rdata <= {overflow, 13'd0, (queued == '0), q_full,
                                                     {{(16 - PW){1'b0}}, queued}};
                    A_SEQ:   s_axi_control_rdata <= {{(32 - SEQ_W){1'b0}}, d_seq};
                    A_OFF:   s_axi_control_rdata <= {{(32 - OFF_W){1'b0}}, d_off};
                    A_LEN:   s_axi_control_rdata <= {{(32 - LEN_W){1'b0}}, d_len};
                    A_JOBS:  s_axi_control_rdata <= jobs_done;
                    A_CYC:   s_axi_control_rdata <= run_cycles;
                    A_HAND:  s_axi_control_rdata <= HANDOFF_CYCLES;
                    default: begin
                        for (int s = 0; s < S; s++) begin
                            if (ra >= A_STAGE0 && ra_stage == s[4:0]) begin
                                s_axi_control_rdata <= ra[2] ? idle_cnt[s * 32 +: 32] : busy_cnt[s * 32 +: 32];
                            end
                        end
                    end
                endcase
            end else if (s_axi_control_rready) begin
                s_axi_control_rvalid <= 1'b0;
            end
        end
    end

    // Descriptor queue (distributed RAM: one write port, one read port per stage).
    always_ff @(posedge ap_clk) begin
        if (push_cmd && !q_full) begin
            q_seq[pushed[AW-1:0]] <= d_seq;
            q_off[pushed[AW-1:0]] <= d_off;
            q_len[pushed[AW-1:0]] <= wr_len;
        end
    end

    // Stage arguments, loaded when ap_start rises and held until the next issue.
    always_ff @(posedge ap_clk) begin
        for (int s = 0; s < S; s++) begin
            if (issue[s]) begin
                stage_seq_id[s * SEQ_W +: SEQ_W] <= q_seq[issued[s * PW +: AW]];
                stage_offset[s * OFF_W +: OFF_W] <= q_off[issued[s * PW +: AW]];
                stage_length[s * LEN_W +: LEN_W] <= q_len[issued[s * PW +: AW]];
            end
        end
    end

    assign interrupt = gie && ier && isr;
endmodule

`default_nettype wire
