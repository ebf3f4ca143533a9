# LAB STAND-IN for the k3s node process, run as k3s-server or k3s-agent (the
# names k3s gives itself) by lab/image/k3s. What the package must wait for:
# - a server is ready (READY=1 to systemd, its API answers `k3s kubectl`) only
#   once a quorum of the servers runs, as with embedded etcd: it listens on
#   etcd's peer port 2380 and counts the peers in /etc/rancher/k3s/lab-peers
#   (their addresses; none: a cluster of one server) that answer there;
# - a node is Ready (its kubelet port 10250 answers) only after it settled,
#   /etc/rancher/k3s/lab-settle seconds (default 1) after starting; an agent
#   unit is Type=exec, so systemd calls it active long before that.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;

my $role = shift // 'agent';
my $etc = '/etc/rancher/k3s';
my $api_ready = '/run/k3s/lab-api-ready';
my $select = IO::Select->new;

$SIG{TERM} = $SIG{INT} = sub { unlink $api_ready if $role eq 'server'; exit 0 };

sub lines {
    open(my $f, '<', $_[0]) or return ();
    my @lines = grep { /\S/ && !/^#/ } map { s/\s+$//r } <$f>;
    close $f;
    return @lines;
}

sub listen_on {
    my $socket = IO::Socket::INET->new(LocalPort => $_[0], Listen => 16, ReuseAddr => 1, Proto => 'tcp')
        or die "k3s (lab stand-in): cannot listen on port $_[0]: $!\n";
    $select->add($socket);
}

sub answers {
    my $socket = IO::Socket::INET->new(PeerAddr => $_[0], PeerPort => 2380, Proto => 'tcp', Timeout => 1);
    return $socket ? 1 : 0;
}

# Accept and close connections (the probes) for up to $_[0] seconds.
sub serve {
    my $until = time + $_[0];
    while ((my $left = $until - time) > 0) {
        for my $socket ($select->can_read($left)) {
            my $connection = $socket->accept;
            close $connection if $connection;
        }
    }
}

if ($role eq 'server') {
    listen_on(2380);
    my @peers = lines("$etc/lab-peers");
    my $quorum = int((@peers + 1) / 2) + 1;
    serve(1) until 1 + (grep { answers($_) } @peers) >= $quorum;
}
serve((lines("$etc/lab-settle"))[0] // 1);
listen_on(10250);
if ($role eq 'server') {
    if (open(my $f, '>', $api_ready)) { close $f }
}
system('systemd-notify', '--ready') if $ENV{NOTIFY_SOCKET};
serve(3600) while 1;
