# Package one padless RTL block (hw/rtl) as a Vivado IP with ipx::package_project.
#
#   vivado -mode batch -source package_ip.tcl -tclargs <block> <rtl_dir> <out_dir> [part]
#
# <block>: selection_engine | length_dispatcher. The IP lands in <out_dir>/ip/<block> (component.xml),
# with AXI4-Stream (s_axis_query, s_axis_key, m_axis_idx) or AXI4-Lite (s_axi_control) bus interfaces
# and the interrupt inferred, all associated with ap_clk / ap_rst_n. package_xo.tcl sources this file.
# Register map and stream formats: docs/registers.md.

namespace eval padless_pkg {
    variable blocks [dict create \
        selection_engine  {selection_score.sv selection_sorter.sv selection_engine.sv} \
        length_dispatcher {length_dispatcher.sv}]
    variable busifs [dict create \
        selection_engine  {s_axis_query s_axis_key m_axis_idx} \
        length_dispatcher {s_axi_control}]
    variable default_part xcu280-fsvh2892-2L-e
}

proc padless_pkg::usage {} {
    return "usage: vivado -mode batch -source package_ip.tcl -tclargs <block> <rtl_dir> <out_dir> \[part\]\n  <block>: [join [dict keys $::padless_pkg::blocks] { | }]"
}

# Parse ::argv into a dict {block rtl_dir out_dir part ip_dir}; errors name what is wrong.
proc padless_pkg::parse_args {argv} {
    variable blocks
    variable default_part
    if {[llength $argv] < 3 || [llength $argv] > 4} {
        error "expected 3 or 4 arguments, got [llength $argv]\n[usage]"
    }
    lassign $argv block rtl_dir out_dir part
    if {![dict exists $blocks $block]} {
        error "unknown block '$block'\n[usage]"
    }
    if {$part eq ""} { set part $default_part }
    set rtl_dir [file normalize $rtl_dir]
    foreach f [dict get $blocks $block] {
        if {![file exists [file join $rtl_dir $f]]} {
            error "missing RTL source [file join $rtl_dir $f] (pass the folder holding hw/rtl/*.sv)"
        }
    }
    set out_dir [file normalize $out_dir]
    return [dict create block $block rtl_dir $rtl_dir out_dir $out_dir part $part \
                ip_dir [file join $out_dir ip $block]]
}

proc padless_pkg::make_ip {cfg} {
    variable blocks
    variable busifs
    set block [dict get $cfg block]
    set ip_dir [dict get $cfg ip_dir]
    set files {}
    foreach f [dict get $blocks $block] {
        lappend files [file join [dict get $cfg rtl_dir] $f]
    }
    create_project -force ${block}_pkg [file join [dict get $cfg out_dir] ${block}_pkg] \
        -part [dict get $cfg part]
    add_files -norecurse $files
    set_property file_type SystemVerilog [get_files $files]
    set_property top $block [current_fileset]
    update_compile_order -fileset sources_1

    ipx::package_project -root_dir $ip_dir -vendor padless.dev -library rtl -taxonomy /padless \
        -import_files -set_current true -force
    set core [ipx::current_core]
    set_property name $block $core
    set_property version 1.0 $core
    set_property display_name "padless $block" $core
    set_property description "padless $block (hw/rtl/$block.sv); register map in docs/registers.md" $core

    ipx::infer_bus_interfaces xilinx.com:interface:axis_rtl:1.0 $core
    ipx::infer_bus_interfaces xilinx.com:interface:aximm_rtl:1.0 $core
    ipx::infer_bus_interfaces xilinx.com:signal:clock_rtl:1.0 $core
    ipx::infer_bus_interfaces xilinx.com:signal:reset_rtl:1.0 $core
    if {$block eq "length_dispatcher"} {
        ipx::infer_bus_interfaces xilinx.com:signal:interrupt_rtl:1.0 $core
        ipx::add_memory_map s_axi_control $core
        set_property slave_memory_map_ref s_axi_control [ipx::get_bus_interfaces s_axi_control -of_objects $core]
        set block_regs [ipx::add_address_block reg0 [ipx::get_memory_maps s_axi_control -of_objects $core]]
        set_property range 256 $block_regs
    }
    foreach busif [dict get $busifs $block] {
        ipx::associate_bus_interfaces -busif $busif -clock ap_clk $core
    }
    ipx::associate_bus_interfaces -clock ap_clk -reset ap_rst_n $core
    set_property value ACTIVE_LOW [ipx::get_bus_parameters POLARITY -of_objects \
        [ipx::get_bus_interfaces ap_rst_n -of_objects $core]]

    set_property core_revision 1 $core
    ipx::create_xgui_files $core
    ipx::update_checksums $core
    ipx::check_integrity $core
    ipx::save_core $core
    close_project
    return $ip_dir
}

# Run when sourced by Vivado directly (package_xo.tcl sets padless_pkg::no_main before sourcing).
if {![info exists ::padless_pkg::no_main]} {
    set cfg [padless_pkg::parse_args $::argv]
    puts "padless: packaged [dict get $cfg block] as IP in [padless_pkg::make_ip $cfg]"
}
