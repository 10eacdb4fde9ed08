"""/sys/kernel/tracing/README: a short guide to what this tracefs has, laid out as Linux's
mini-HOWTO (scripts probe it with grep before they use a feature)."""

from __future__ import annotations

README = """\
tracing mini-HOWTO:

# echo 0 > tracing_on : stop recording into the rings
# echo 1 > tracing_on : record again

 Important files:
  trace\t\t\t- What the rings hold; `echo > trace` empties them
  tracing_on\t\t- 1 records, 0 does not (the tracers stay attached)
  current_tracer\t- The tracer in use: function or nop
  available_tracers\t- The tracers current_tracer takes
  tracing_cpumask\t- Hex mask of the CPUs whose calls are recorded
  enabled_functions\t- Functions with a callback now, and the trampoline they call
  touched_functions\t- Functions that ever had a callback

  available_filter_functions - The functions the filter files can name
  set_ftrace_filter\t- Trace only the functions written here
\t     accepts: func_full_name or glob-matching-pattern
\t     modules: one module's functions with :mod:
\t      Format: <function glob>:mod:<module-name>
\t     example: echo '*:mod:hello' > set_ftrace_filter
\t              (kept until the module loads if it is not loaded yet)
\t    triggers: what to do when a function is called
\t      Format: <function>:<trigger>[:count]
\t     trigger: traceon, traceoff
\t\t      enable_event:<system>:<event>
\t\t      disable_event:<system>:<event>
\t\t      stacktrace
\t\t      snapshot
\t     example: echo cmdline_proc_show:traceoff:2 > set_ftrace_filter
\t              (turns tracing off at most twice: a call that finds it
\t              off already does not use up the count)
\t     removal: echo '!<function>:<trigger>' >> set_ftrace_filter
\t              echo '!<function>:<trigger>:0' >> set_ftrace_filter (with a count)
\t     a leading '!' removes the functions a glob matches
  set_ftrace_notrace\t- Never trace the functions written here (globs and :mod:,
\t\t\t  no triggers); it wins over set_ftrace_filter
  set_ftrace_pid\t- Trace only the tasks whose pids are written here
\t\t    (function)
  set_ftrace_notrace_pid\t- Never trace the tasks whose pids are written here
\t\t    (function)
  function_profile_enabled - 1 counts the calls of each function set_ftrace_filter
\t\t\t  allows, per CPU, in trace_stat/function<cpu>; 0 stops

  stack_trace\t\t- The deepest stack seen since stack_max_size was reset
  stack_max_size\t- Its size in bytes; write 0 to measure again
  stack_trace_filter\t- Like set_ftrace_filter (globs only), for the functions
\t\t\t  the stack tracer checks
\t\t\t  (enable it in /proc/sys/kernel/stack_tracer_enabled)

  error_log\t\t- Why the last writes that support it were refused,
\t\t\t  with a caret under the offending part; write to clear

  available_events\t- Every event, as <system>:<event>
  set_event\t\t- Events to record: <system>:<event>, <system>:*,
\t\t\t  *:<event> or a bare name; a leading '!' stops one
  set_event_pid\t- Record events only of the tasks whose pids are written here
  set_event_notrace_pid\t- Record no events of the tasks whose pids are written here
  events/\t\t- One directory per system, then per event:
      enable\t\t- 1 records, 0 stops (for all, a system, or one event)
      filter\t\t- Record only what the expression accepts
\t\t\t  (==, !=, <, <=, >, >=, &, ~ with globs, &&, ||, !)
      trigger\t\t- What an event's hit does
\t    Format: <trigger>[:count][if <filter>]
\t   trigger: traceon, traceoff
\t            enable_event:<system>:<event>
\t            disable_event:<system>:<event>
\t            stacktrace, snapshot
      format, id\t- The record's fields, and the event's number

  kprobe_events\t\t- Create/append/remove/show kprobe-based events; each line
\t\t\t  written defines (or, with '-:', removes) one event
  dynamic_events\t\t- Create/append/remove/show the same, as dynamic events
\t  accepts: one event definition per line
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
  kprobe_profile\t\t- Hits and misses of each kprobe event
"""
