//! The pause process of a pod sandbox (what Kubernetes' `registry.k8s.io/pause` runs): it
//! holds the pod's namespaces open, reaps zombies as the PID namespace's init, and exits 0
//! on SIGINT or SIGTERM. Built statically (`make pause`) so the image needs nothing else;
//! the tests build the image with `wasmlet-oci` because no image can be pulled here.

extern "C" fn exit_now(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

extern "C" fn reap(_: libc::c_int) {
    // SAFETY: waitpid with WNOHANG is async-signal-safe; a null status pointer is allowed.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

fn handle(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handlers only call
    // async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut());
    }
}

fn main() {
    handle(libc::SIGINT, exit_now);
    handle(libc::SIGTERM, exit_now);
    handle(libc::SIGCHLD, reap);
    loop {
        // SAFETY: pause only waits for a signal.
        unsafe { libc::pause() };
    }
}
