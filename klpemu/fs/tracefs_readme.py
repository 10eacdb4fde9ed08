"""tracefs `README`: the mini-HOWTO, whose lines the kernel's selftests grep to learn what this
kernel supports; it claims only what is here."""

from __future__ import annotations

README = """\
tracing mini-HOWTO:

# echo 0 > tracing_on : quick way to disable tracing
# echo 1 > tracing_on : quick way to re-enable tracing

 Important files:
  trace\t\t\t- The static contents of the buffer
\t\t\t  To clear the buffer write into this file: echo > trace
  tracing_on\t\t- Enable / Disable writing to the ring buffer
  current_tracer\t- function and latency tracers
  available_tracers\t- list of configured tracers for current_tracer
  error_log\t- error log for failed commands (that support it)
  set_ftrace_filter\t- echo function name in here to only trace these
\t\t\t  functions
  set_ftrace_notrace\t- echo function name in here to never trace.
  available_events\t- list of all available trace events
  set_event\t\t- enable events by name (sys:event, sys:*, *:event)
  set_event_pid\t- filter events by pid
  kprobe_events\t\t- Create/append/remove/show the kernel dynamic events
\t\t\t  Write into this file to define/undefine new trace events.
  dynamic_events\t\t- Create/append/remove/show the generic dynamic events
\t\t\t  Write into this file to define/undefine new trace events.
\t  accepts: event-definitions (one definition per line)
\t   Format: p[:[<group>/][<event>]] <place> [<args>]
\t           r[maxactive][:[<group>/][<event>]] <place> [<args>]
\t           -:[<group>/][<event>]
\t    place: [<module>:]<symbol>[+<offset>]|<memaddr>
place (kretprobe): [<module>:]<symbol>[+<offset>]%return|<memaddr>
\t     args: <name>=fetcharg[:type]
\t fetcharg: (%<register>|$<efield>), @<address>, @<symbol>[+|-<offset>],
\t           $stack<index>, $stack, $retval, $comm, $arg<N>,
\t           +|-[u]<offset>(<fetcharg>), \\imm-value, \\"imm-string"
\t     type: s8/16/32/64, u8/16/32/64, x8/16/32/64, char, string, symbol,
\t           b<bit-width>@<bit-offset>/<container-size>, ustring,
\t           symstr, <type>\\[<array-size>\\]
\t  kernel return probes support: $retval, $arg<N>, $comm
  events/\t\t- Directory containing all trace event subsystems:
      enable\t\t- Write 0/1 to enable/disable tracing of all events
  events/<system>/\t- Directory containing all trace events for <system>:
      enable\t\t- Write 0/1 to enable/disable tracing of all <system>
\t\t\t  events
      filter\t\t- If set, only events passing filter are traced
  events/<system>/<event>/\t- Directory containing control files for
\t\t\t  <event>:
      enable\t\t- Write 0/1 to enable/disable tracing of <event>
      filter\t\t- If set, only events passing filter are traced
      trigger\t\t- If set, a command to perform when event is hit
\t    Format: <trigger>[:count][if <filter>]
\t   trigger: traceon, traceoff
\t            enable_event:<system>:<event>
\t            disable_event:<system>:<event>
\t\t    stacktrace
"""
