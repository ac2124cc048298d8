<?php
// The ThinkPHP side of the push center, reduced to what it does: LPUSH one message onto the
// Redis list the gateway reads. No polling timer, no Workerman process, no Redis extension:
// the RESP protocol is written by hand over stream_socket_client (Debian's php-cli as is).
//
//   php lpush.php "text" [--title TITLE] [--id ID] [--redis HOST:PORT] [--password P] [--key push:center]
//
// Each list item is a JSON command for the gateway (docs/consumers.md):
//   {"method":"broadcast","params":{"text":"<message JSON>"},"id":"<message id>"}
// and the message every client gets is {"id","title","text","from":"php"}. Give `--id` to retry
// a push safely: the gateway carries out one id once (within its --command-id-ttl, 10 minutes).
// A retry must be the same message (same id, title and text): the gateway refuses an id reused
// for a different command. That is why the message holds no timestamp; the page shows when it
// arrived.
//
// Exit codes: 0 pushed, 1 Redis could not be reached or refused, 2 bad arguments.

declare(strict_types=1);

const USAGE = 'usage: php lpush.php "text" [--title TITLE] [--id ID] [--redis HOST:PORT] [--password P] [--key push:center]';

function fail(int $code, string $message): never
{
    fwrite(STDERR, "lpush.php: $message\n");
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
$opts = ['title' => 'Notice', 'id' => null, 'redis' => '127.0.0.1:6379', 'password' => null, 'key' => 'push:center'];
$text = null;
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
    } elseif ($text === null) {
        $text = $arg;
    } else {
        fail(2, "unexpected argument \"$arg\"\n" . USAGE);
    }
}
if ($text === null || $text === '') {
    fail(2, 'the message text is required' . "\n" . USAGE);
}
$id = $opts['id'] ?? ('php-' . bin2hex(random_bytes(8)));
if (!preg_match('/^[\x21-\x7e]{1,100}$/', $id)) {
    fail(2, "--id must be 1-100 printable ASCII characters without spaces, got \"$id\"");
}

$message = json_encode([
    'id' => $id,
    'title' => $opts['title'],
    'text' => $text,
    'from' => 'php',
], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
$command = json_encode([
    'method' => 'broadcast',
    'params' => ['text' => $message],
    'id' => $id,
], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);

// Redis.
$sock = @stream_socket_client('tcp://' . $opts['redis'], $errno, $errstr, 3.0);
if ($sock === false) {
    fail(1, "cannot reach Redis at {$opts['redis']}: $errstr (is redis-server running? pass --redis HOST:PORT)");
}
stream_set_timeout($sock, 5);
if ($opts['password'] !== null) {
    redis_call($sock, ['AUTH', $opts['password']]);
}
$length = redis_call($sock, ['LPUSH', $opts['key'], $command]);
fclose($sock);

echo "pushed $id to {$opts['key']} (list length $length)\n";
