//! `hello --udp-echo NAME=ADDR`: a UDP service beside HTTP whose socket goes through live
//! upgrades like the listeners, the way an app claims or registers any other fd.

/// The UDP socket NAME, inherited (`actix_graceful::take_udp`) or bound fresh at ADDR and
/// registered (`actix_graceful::register_fd`), so it is handed to every successor. Prints
/// `hello udp NAME ADDR (inherited|bound)`, then echoes `pid=<pid> <datagram>` until this
/// process drains, and keeps the socket open afterwards (a take-back would hand it on again)
/// without reading it.
pub fn echo(spec: &str) -> std::io::Result<()> {
    let (name, addr) = spec.split_once('=').ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--udp-echo {spec:?}: want NAME=ADDR"),
        )
    })?;
    let (socket, origin) = match actix_graceful::take_udp(name)? {
        Some(socket) => (socket, "inherited"),
        None => {
            let socket = std::net::UdpSocket::bind(addr)?;
            actix_graceful::register_fd(name, &socket)?;
            (socket, "bound")
        }
    };
    println!("hello udp {name} {} ({origin})", socket.local_addr()?);
    socket.set_nonblocking(true)?;
    let socket = actix_web::rt::net::UdpSocket::from_std(socket)?;
    actix_web::rt::spawn(serve(socket));
    Ok(())
}

/// Answers every datagram with `pid=<pid> ` and the datagram, until the drain starts; then
/// holds the socket for good.
async fn serve(socket: actix_web::rt::net::UdpSocket) {
    let pid = std::process::id();
    let mut buf = [0u8; 1500];
    let mut drain = std::pin::pin!(actix_graceful::draining());
    loop {
        let got = {
            let recv = std::pin::pin!(socket.recv_from(&mut buf));
            match futures::future::select(drain.as_mut(), recv).await {
                futures::future::Either::Left(_) => break,
                futures::future::Either::Right((got, _)) => got,
            }
        };
        match got {
            Ok((n, from)) => {
                let reply = [format!("pid={pid} ").as_bytes(), &buf[..n]].concat();
                let _ = socket.send_to(&reply, from).await;
            }
            Err(err) => log::warn!("udp echo: {err}"),
        }
    }
    std::future::pending::<()>().await;
    drop(socket);
}
