# Package one padless RTL block (hw/rtl) as a Vitis RTL kernel (.xo) with package_xo.
#
#   vivado -mode batch -source package_xo.tcl -tclargs <block> <rtl_dir> <out_dir> [part]
#
# Packages the IP first (package_ip.tcl, same folder), then writes <out_dir>/<block>.xo for v++ --link.
# Control protocol: length_dispatcher is user_managed (its own s_axi_control registers, interrupt;
# docs/registers.md); selection_engine is ap_ctrl_none (a free-running AXI4-Stream kernel, connect
# its streams with v++ --connectivity.sc).

namespace eval padless_pkg { variable no_main 1 }
source [file join [file dirname [file normalize [info script]]] package_ip.tcl]

proc padless_pkg::make_xo {cfg} {
    set block [dict get $cfg block]
    set ip_dir [padless_pkg::make_ip $cfg]
    set xo [file join [dict get $cfg out_dir] ${block}.xo]
    if {$block eq "length_dispatcher"} {
        set protocol user_managed
    } else {
        set protocol ap_ctrl_none
    }
    package_xo -force -xo_path $xo -kernel_name $block -ip_directory $ip_dir -ctrl_protocol $protocol
    return $xo
}

set cfg [padless_pkg::parse_args $::argv]
puts "padless: packaged [dict get $cfg block] as Vitis kernel [padless_pkg::make_xo $cfg]"
