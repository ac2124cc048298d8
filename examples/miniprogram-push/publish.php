<?php
// The backend side of the mini-program push, reduced to what it does: PUBLISH one message to
// pub.user.<id>. The gateway is subscribed to pub.user.* and delivers it to that user's
// connections only. No Ratchet server, no predis-async loop, no Redis extension: the RESP
// protocol is written by hand over stream_socket_client (Debian's php-cli as is). The same
// ~40 lines of RESP as examples/push-center/lpush.php: each example stands alone.
//
//   php publish.php USER_ID "text" [--redis HOST:PORT] [--password P] [--prefix pub.user.]
//
// The message the user's pages get is the JSON {"id","text"}. PUBLISH answers how many
// subscribers (gateways) received it; Pub/Sub keeps nothing, so 0 means the message is lost and
// this script says so and exits 3 (a backend that must know checks this, docs/consumers.md).
//
// Exit codes: 0 published, 1 Redis could not be reached or refused, 2 bad arguments,
// 3 no gateway was subscribed.

declare(strict_types=1);

const USAGE = 'usage: php publish.php USER_ID "text" [--redis HOST:PORT] [--password P] [--prefix pub.user.]';

function fail(int $code, string $message): never
{
    fwrite(STDERR, "publish.php: $message\n");
    exit($code);
}

/** One RESP command: an array of bulk strings. */
function resp_command(array $args): string
{
    $out = '*' . count($args) . "\r\n";
    foreach ($args as $arg) {
        $arg = (string) $arg;
        $out .= '$' . strlen($arg) . "\r\n" . $arg . "\r\n";
    }
    return $out;
}

/** Reads one RESP reply (simple string, error, integer, bulk string). */
function resp_reply($sock): string|int|null
{
    $line = fgets($sock);
    if ($line === false) {
        fail(1, 'Redis closed the connection without an answer');
    }
    $line = rtrim($line, "\r\n");
    $rest = substr($line, 1);
    switch ($line[0] ?? '') {
        case '+':
            return $rest;
        case '-':
            fail(1, "Redis refused: $rest");
        case ':':
            return (int) $rest;
        case '$':
            $len = (int) $rest;
            if ($len < 0) {
                return null;
            }
            $data = '';
            while (strlen($data) < $len + 2) {
                $chunk = fread($sock, $len + 2 - strlen($data));
                if ($chunk === false || $chunk === '') {
                    fail(1, 'Redis closed the connection mid-answer');
                }
                $data .= $chunk;
            }
            return substr($data, 0, $len);
        default:
            fail(1, "unexpected answer from Redis: $line");
    }
}

function redis_call($sock, array $args): string|int|null
{
    if (fwrite($sock, resp_command($args)) === false) {
        fail(1, 'cannot write to Redis');
    }
    return resp_reply($sock);
}

// Arguments.
$opts = ['redis' => '127.0.0.1:6379', 'password' => null, 'prefix' => 'pub.user.'];
$positional = [];
$argv = array_slice($_SERVER['argv'], 1);
for ($i = 0; $i < count($argv); $i++) {
    $arg = $argv[$i];
    if (str_starts_with($arg, '--')) {
        $name = substr($arg, 2);
        if (!array_key_exists($name, $opts)) {
            fail(2, "unknown option $arg\n" . USAGE);
        }
        if (!isset($argv[$i + 1])) {
            fail(2, "$arg needs a value\n" . USAGE);
        }
        $opts[$name] = $argv[++$i];
    } else {
        $positional[] = $arg;
    }
}
if (count($positional) !== 2 || $positional[0] === '' || $positional[1] === '') {
    fail(2, 'a user id and the message text are required' . "\n" . USAGE);
}
[$user, $text] = $positional;
if (strlen($user) > 128) {
    fail(2, 'a user id has at most 128 characters');
}

$id = 'pub-' . bin2hex(random_bytes(8));
$message = json_encode(['id' => $id, 'text' => $text], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
$channel = $opts['prefix'] . $user;

// Redis.
$sock = @stream_socket_client('tcp://' . $opts['redis'], $errno, $errstr, 3.0);
if ($sock === false) {
    fail(1, "cannot reach Redis at {$opts['redis']}: $errstr (is redis-server running? pass --redis HOST:PORT)");
}
stream_set_timeout($sock, 5);
if ($opts['password'] !== null) {
    redis_call($sock, ['AUTH', $opts['password']]);
}
$receivers = redis_call($sock, ['PUBLISH', $channel, $message]);
fclose($sock);

if ($receivers === 0) {
    fail(3, "published $id to $channel, but no gateway is subscribed: the message is lost (is wsgate running with this example's wsgate.toml?)");
}
echo "published $id to $channel: $receivers subscriber(s) got it\n";
