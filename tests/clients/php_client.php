<?php
// A client nobody here wrote: PHP's SoapClient generated from the WSDL.
// usage: php php_client.php WSDL_URL USER SECRET OPERATION MESSAGE_FILE  → prints the returned string
[$_, $wsdl, $user, $secret, $operation, $file] = $argv;
$client = new SoapClient($wsdl, [
    'login' => $user,
    'password' => $secret,
    'cache_wsdl' => WSDL_CACHE_NONE,
    'exceptions' => true,
    'trace' => false,
]);
$message = file_get_contents($file);
$result = $client->__soapCall($operation, [['xml' => $message]]);
$property = $operation . 'Result';
fwrite(STDOUT, $result->$property);
