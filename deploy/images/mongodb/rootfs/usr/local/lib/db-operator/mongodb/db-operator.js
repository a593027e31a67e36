// The database side of the db-operator mongodb-tools entrypoints, run by mongosh --nodb.
//
// Every value comes from the environment (names never appear in this code's text) and
// passwords from files, read here and put into the connection string in memory only, so no
// secret reaches argv, the environment or the output. DBO_TASK selects the work:
//   commission   create the Database's user, or update its password and roles (idempotent)
//   check-empty  print the collections of DB_NAME that hold documents, one per line as
//                "non-empty<TAB><JSON string>"
// Failures print one "error: ..." line and exit 1.
'use strict';

const fs = require('fs');

function requireEnv(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set; the entrypoint script sets it`);
  }
  return value;
}

// Connects with the credentials-free connection string in env `uriVar` as the user in env
// `userVar`, whose password is the content of the file named by env `passwordFileVar`.
function login(uriVar, userVar, passwordFileVar) {
  const uri = requireEnv(uriVar);
  const user = requireEnv(userVar);
  const password = fs.readFileSync(requireEnv(passwordFileVar), 'utf8');
  const prefix = 'mongodb://';
  if (!uri.startsWith(prefix)) {
    throw new Error(`${uriVar} must start with ${prefix}`);
  }
  const credentials = `${encodeURIComponent(user)}:${encodeURIComponent(password)}@`;
  return connect(prefix + credentials + uri.slice(prefix.length));
}

// Runs `command` on `database`; a reply without ok: 1 is an error naming `what`.
function run(database, command, what) {
  const reply = database.runCommand(command);
  if (!reply || Number(reply.ok) !== 1) {
    throw new Error(`${what} failed: ${(reply && reply.errmsg) || JSON.stringify(reply)}`);
  }
  return reply;
}

function commission() {
  const dbName = requireEnv('DB_NAME');
  const user = requireEnv('DB_USER');
  const userDb = requireEnv('DBO_USER_DATABASE');
  const adminUser = requireEnv('DBO_ADMIN_USER');
  const adminDb = requireEnv('DBO_ADMIN_AUTH_SOURCE');
  const roles = requireEnv('DB_ROLES').split(',').map((role) => ({ role, db: dbName }));
  const label = `user ${JSON.stringify(user)} (in database ${JSON.stringify(userDb)})`;

  if (user === adminUser && userDb === adminDb) {
    throw new Error(
      `${label} is the admin this Job logs in as; db-operator will not change it. ` +
        'Give the Database a user name of its own in its credentials Secret');
  }
  const admin = login('DBO_ADMIN_URI', 'DBO_ADMIN_USER', 'DBO_ADMIN_PASSWORD_FILE');
  const home = admin.getSiblingDB(userDb);
  const existing = run(home, { usersInfo: { user, db: userDb } }, `looking up ${label}`).users;
  const pwd = fs.readFileSync(requireEnv('DB_PASSWORD_FILE'), 'utf8');

  if (existing.length === 0) {
    run(home, { createUser: user, pwd, roles }, `creating ${label}`);
    print(`created ${label} with roles ${roles.map((r) => r.role).join(',')} on ${dbName}`);
    return;
  }
  // Replacing the roles of a user that can reach other databases (an admin, another app's
  // user) would take those rights away or hand its login over; only manage users whose roles
  // are confined to this Database.
  const foreign = (existing[0].roles || []).filter((r) => r.db !== dbName);
  if (foreign.length > 0) {
    const list = foreign.map((r) => `${r.role}@${r.db}`).join(', ');
    throw new Error(
      `${label} already exists with roles outside database ${JSON.stringify(dbName)} (${list}); ` +
        'db-operator manages only users whose roles are on their own database. ' +
        'Give the Database a user name of its own in its credentials Secret');
  }
  run(home, { updateUser: user, pwd, roles }, `updating ${label}`);
  print(`updated the password and roles (${roles.map((r) => r.role).join(',')}) of ${label}`);
}

function checkEmpty() {
  const dbName = requireEnv('DB_NAME');
  const target = login('DBO_URI', 'DB_USER', 'DB_PASSWORD_FILE').getSiblingDB(dbName);
  // Views hold no documents of their own, and system collections are the server's.
  const collections = target
    .getCollectionInfos({ type: 'collection' }, { nameOnly: true, authorizedCollections: true })
    .map((c) => c.name)
    .filter((name) => !name.startsWith('system.'));
  for (const name of collections) {
    if (target.getCollection(name).findOne({}, { _id: 1 }) !== null) {
      print(`non-empty\t${JSON.stringify(name)}`);
    }
  }
}

try {
  const task = requireEnv('DBO_TASK');
  if (task === 'commission') {
    commission();
  } else if (task === 'check-empty') {
    checkEmpty();
  } else {
    throw new Error(`unknown DBO_TASK ${JSON.stringify(task)}`);
  }
} catch (e) {
  print(`error: ${e.message}`);
  quit(1);
}
